"""Fixtures: the rig config with short wake-up timeouts, a running emulator and a connected GrblRig."""

import dataclasses

import pytest

from ir_robot.devices.config import load_rig_config


def fast_config(**grbl_changes):
    cfg = load_rig_config()
    grbl = dataclasses.replace(cfg.grbl, wake_timeout_s=0.4, **grbl_changes)
    return dataclasses.replace(cfg, grbl=grbl)


@pytest.fixture
def rig_config():
    return fast_config()


@pytest.fixture(name="flat_force")
def _flat_force_fixture():
    return flat_force


def flat_force(t_s, joints, rate):
    """A stub force model: 0.1 N per mm of insertion (keeps the tests independent of the tissue model)."""
    return 0.1 * max(joints.insert_mm, 0.0)


@pytest.fixture
def emulator(rig_config):
    from ir_robot.devices.emulator import GrblEmulator

    emu = GrblEmulator(rig_config, seed=7, force_fn=flat_force).start()
    yield emu
    emu.close()
    assert emu.loop_errors == []


@pytest.fixture
def rig(emulator, rig_config):
    from ir_robot.devices.serial_rig import GrblRig

    r = GrblRig(rig_config, port=emulator.port, loadcell_port=emulator.loadcell_port)
    yield r
    r.close()


@pytest.fixture
def ready_rig(rig):
    """Connected and homed (MPos -1, -1, -1)."""
    rig.home()
    return rig
