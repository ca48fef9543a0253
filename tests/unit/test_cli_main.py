"""The ``ir-robot`` entry point: every area's subcommands are registered, and a closed pipe is quiet."""

import os
import subprocess
import sys

from ir_robot.cli import COMMAND_MODULES, build_parser


def test_every_area_registers_its_subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)
    assert {
        "sim",
        "dataset",
        "train-perception",
        "evaluate",
        "demo",
        "rig",
        "rig-emulator",
        "launch",
        "replay",
        "bench",
        "train-rl",
    } <= names
    assert len(COMMAND_MODULES) == 7


def _run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m ir_robot.cli ARGS`` with stdout a pipe nobody reads (``... | head`` after head quit)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written: every write fails with EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "ir_robot.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """``ir-robot rig status --json | head -1``: the JSON goes nowhere, the command ends without a traceback."""
    import dataclasses

    import yaml

    from ir_robot.config import to_dict
    from ir_robot.devices.config import load_rig_config
    from ir_robot.devices.emulator import GrblEmulator

    cfg = load_rig_config()
    cfg = dataclasses.replace(cfg, grbl=dataclasses.replace(cfg.grbl, wake_timeout_s=0.4))
    config_file = tmp_path / "rig.yaml"
    config_file.write_text(yaml.safe_dump(to_dict(cfg)))
    with GrblEmulator(cfg) as emu:
        res = _run_into_closed_pipe(
            "rig",
            "status",
            "--json",
            "--config",
            str(config_file),
            "--port",
            emu.port,
            "--loadcell-port",
            emu.loadcell_port,
        )
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
    assert res.returncode == 141


def test_help_into_a_closed_pipe_ends_quietly():
    res = _run_into_closed_pipe("--help")
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
