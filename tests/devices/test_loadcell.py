"""HX711 load cell: line parsing, calibration arithmetic, and the reader against the emulator's pty."""

import dataclasses
import time

import numpy as np
import pytest

from ir_robot.core.errors import ProtocolError, RigError
from ir_robot.devices.emulator import GrblEmulator
from ir_robot.devices.loadcell import LoadCell, calibrate, counts_to_force, parse_loadcell_line


@pytest.mark.parametrize(
    "raw,value",
    [
        (b"123456", 123456.0),
        (b"-2048\r", -2048.0),
        (b"1024,-77", -77.0),
        (b"HX711: 5000", 5000.0),
        (b"t=12 raw=+42", 42.0),
        (b"1.5", 1.5),
        ("  8388607 ", 8388607.0),
    ],
)
def test_parse_reading(raw, value):
    assert parse_loadcell_line(raw) == value


@pytest.mark.parametrize(
    "raw,why",
    [
        (b"", "empty"),
        (b"abc", "not a number"),
        (b"12\xff", "non-ASCII"),
        (b"99999999", "24-bit"),
        (b"1" * 100, "characters"),
        (b"1,2,", "not a number"),
    ],
)
def test_parse_errors(raw, why):
    with pytest.raises(ProtocolError, match=why):
        parse_loadcell_line(raw)


def test_counts_to_force_and_calibration(rig_config):
    cfg = dataclasses.replace(rig_config.loadcell, tare_counts=1000.0, counts_per_n=2000.0, sign=-1)
    assert counts_to_force(1000.0, cfg) == 0.0
    assert np.allclose(counts_to_force([3000.0, -1000.0], cfg), [-1.0, 1.0])
    cpn, sign = calibrate(tare_counts=1000.0, loaded_counts=1000.0 - 0.1 * 9.80665 * 2000.0, mass_kg=0.1)
    assert cpn == pytest.approx(2000.0) and sign == -1
    with pytest.raises(RigError, match="did not change"):
        calibrate(1000.0, 1000.2, 0.1)
    with pytest.raises(RigError, match="mass"):
        calibrate(1000.0, 2000.0, 0.0)


def test_reader_tare_and_callbacks_on_the_emulator(rig_config):
    seen = []

    def force(t, joints, rate):
        return 0.75

    with GrblEmulator(rig_config, force_fn=force, noise_counts=5.0) as emu:
        with LoadCell(rig_config.loadcell, emu.loadcell_port, on_sample=lambda t, f: seen.append((t, f))).open() as lc:
            time.sleep(0.5)
            n = lc.sample_count
            assert 25 <= n <= 50  # 80 samples/s
            t_last, f = lc.latest()
            assert f == pytest.approx(0.75, abs=0.01) and lc.age_s() < 0.1
            assert len(seen) >= n and seen[-1][1] == pytest.approx(0.75, abs=0.01)
            tare = lc.tare(n_samples=10)
            assert tare == pytest.approx(
                rig_config.loadcell.tare_counts + 0.75 * rig_config.loadcell.counts_per_n, abs=20
            )
            time.sleep(0.1)
            assert abs(lc.latest()[1]) < 0.01
            emu._lc_pty.close()
            assert wait(lambda: lc.error is not None)
            assert "vanished" in str(lc.error)


def test_silent_or_wrong_load_cell_port(rig_config):
    import os

    master, slave = os.openpty()
    try:
        with pytest.raises(RigError, match="no readings from the load cell"):
            LoadCell(rig_config.loadcell, os.ttyname(slave)).open(timeout_s=0.3)
    finally:
        os.close(master)
        os.close(slave)
    with GrblEmulator(rig_config, loadcell=False) as emu:  # the GRBL board given as the load cell
        with pytest.raises(RigError, match="not readings"):
            LoadCell(rig_config.loadcell, emu.port).open(timeout_s=0.5)
    with pytest.raises(RigError, match="no load-cell port"):
        LoadCell(dataclasses.replace(rig_config.loadcell, port=None))


def wait(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()
