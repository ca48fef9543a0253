"""The markers do what pytest.ini and the README say: unknown markers are errors, `hardware` tests run only
with a port, and a test that starts rclpy without the `ros` marker fails.

Each case runs pytest in a subprocess on a small test file next to copies of this repository's pytest.ini and
tests/conftest.py (the real configuration, not a re-statement of it)."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASES = """
import pytest


@pytest.mark.hardware
def test_on_the_rig(hardware_port):
    assert hardware_port == "/dev/ttyRIG"


def test_unmarked_starts_rclpy():
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    rclpy.try_shutdown(context=ctx)


@pytest.mark.ros
def test_marked_starts_rclpy():
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    rclpy.try_shutdown(context=ctx)


def test_plain():
    pass
"""


def outcomes(tmp_path: Path, *args: str, cases: str = CASES, env_extra: dict | None = None) -> tuple[int, dict, str]:
    """Run pytest on ``cases`` with the repository's configuration; {test name: passed|failed|skipped|error}."""
    shutil.copy(ROOT / "pytest.ini", tmp_path / "pytest.ini")
    (tmp_path / "tests").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "test_cases.py").write_text(cases)
    env = {k: v for k, v in os.environ.items() if k != "IR_ROBOT_HARDWARE_PORT"}
    env.update(env_extra or {})
    report = tmp_path / "report.xml"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
            result[case.get("name")] = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
                kinds[0] if kinds else "", "passed"
            )
    return res.returncode, result, res.stdout + res.stderr


def test_hardware_tests_skip_without_a_port_and_ros_tests_must_be_marked(tmp_path):
    code, got, output = outcomes(tmp_path)
    assert code == 1, output  # the unmarked rclpy test fails
    assert got["test_on_the_rig"] == "skipped"
    assert got["test_unmarked_starts_rclpy"] == "failed" and "mark it with @pytest.mark.ros" in output
    assert got["test_marked_starts_rclpy"] == "passed" and got["test_plain"] == "passed"


def test_hardware_tests_run_with_a_port_from_the_option_or_the_environment(tmp_path):
    for args, env in ((["--hardware", "/dev/ttyRIG"], {}), ([], {"IR_ROBOT_HARDWARE_PORT": "/dev/ttyRIG"})):
        code, got, output = outcomes(tmp_path, "-m", "hardware", *args, env_extra=env)
        assert code == 0 and got == {"test_on_the_rig": "passed"}, output


def test_an_unknown_marker_is_an_error(tmp_path):
    code, _, output = outcomes(tmp_path, cases="import pytest\n\n\n@pytest.mark.rso\ndef test_typo():\n    pass\n")
    assert code != 0 and "'rso' not found in `markers` configuration option" in output, output
