"""Packaging, checked on what each install path really gets.

- The wheel (`pip wheel .`, so `pip install .`): built from a copy of the tree, it must hold every module,
  py.typed and the data; installed WITH its dependencies into a fresh virtual environment (base install,
  no extras, no torch) every module imports or names the extra it needs, and `ir-robot sim needle` runs
  from it on the data installed with it.
- The colcon path (ament_python: `setup.py install --single-version-externally-managed`): the ROS
  executables land in lib/ir_robot, the data in share/ir_robot, and the installed package finds it.
- The metadata: one version, every third-party import declared, torch only in an extra, package.xml
  complete, the Apache-2.0 LICENSE shipped.

No network beyond what `make install` uses: the fresh venv installs offline from out/wheelhouse, which is
filled once from the index (the pinned versions of requirements.txt) when a wheel is missing from it.
"""

import ast
import configparser
import email.parser
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import ir_robot
from ir_robot.paths import data_path, share_dir

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "out" / "wheelhouse"
DATA_DIRS = ("urdf", "sim", "config", "models", "launch")
#: what `pip wheel .` must not see: build leftovers, caches, environments, outputs
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "out", "build", "install", "log", "runs", "*.egg-info", "__pycache__", ".*_cache", "*.pyc"
)
#: rosdep keys package.xml must declare (setup.py's install_requires where rosdep knows them, and the ROS API)
ROSDEP_KEYS = {
    "python3-numpy",
    "python3-scipy",
    "python3-yaml",
    "python3-opencv",
    "python3-matplotlib",
    "python3-serial",
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "geometry_msgs",
    "visualization_msgs",
    "std_srvs",
}


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)


def clean_env(**extra) -> dict:
    """The environment of a user's shell: no PYTHONPATH (it would import the source tree), no IR_ROBOT_SHARE."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "IR_ROBOT_SHARE")
    }
    env.update(extra)
    return env


def offline_pip_env() -> dict:
    """pip with no configuration at all: no index, no find-links but the ones given (nothing else can slip in)."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def requirements(wheel: Path, extra: str | None = None) -> list[Requirement]:
    """Requires-Dist of the wheel: the base install's (extra=None) or one extra's own lines."""
    out = []
    for line in wheel_metadata(wheel).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if extra is None and req.marker is None:
            out.append(req)
        elif extra is not None and req.marker is not None and req.marker.evaluate({"extra": extra}):
            out.append(Requirement(str(req).split(";")[0]))
    return out


def closure(reqs: list[Requirement]) -> set[str]:
    """Every distribution installed here that ``reqs`` pull in (recursively, extras and markers honoured)."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    stack = list(reqs)
    while stack:
        req = stack.pop()
        key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                stack.append(sub)
    return {name for name, _ in seen}


def modules_in(names) -> list[str]:
    """Module names of the ir_robot/*.py entries of a wheel (packages by their __init__)."""
    out = []
    for n in sorted(names):
        if n.startswith("ir_robot/") and n.endswith(".py"):
            parts = n[: -len(".py")].split("/")
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel .` builds, from a copy of the tree (an in-tree build leaves build/ behind, and a
    stale build/ would ship modules deleted since)."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=COPY_IGNORE)
    res = run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", tmp / "dist"],
        cwd=tmp / "src",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (found,) = (tmp / "dist").glob("ir_robot-*.whl")
    return found


def test_every_package_directory_has_its_init():
    """find_packages skips a folder without __init__.py: the wheel and colcon would ship without it."""
    missing = [
        str(d.relative_to(ROOT))
        for d in [ROOT / "ir_robot", *(ROOT / "ir_robot").rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").is_file()
    ]
    assert missing == []


def test_wheel_holds_every_module_py_typed_the_data_and_the_license(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = wheel_metadata(wheel)
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.optionxform = str  # keep the executables' case
        entry_points.read_string(zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode())
        license_text = zf.read(next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))).decode()
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ir_robot").rglob("*.py")}
    assert sorted(on_disk - names) == []
    assert "ir_robot/sim/__init__.py" in names and "ir_robot/sim/world.py" in names
    assert "ir_robot/py.typed" in names
    # nothing else: no tests, no top-level packages beside ir_robot
    dist = f"ir_robot-{ir_robot.__version__}"
    assert {n.split("/")[0] for n in names} == {"ir_robot", dist + ".dist-info", dist + ".data"}
    share = dist + ".data/data/share/"
    for folder in DATA_DIRS:
        files = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert files, folder
        assert sorted(share + "ir_robot/" + f for f in files if share + "ir_robot/" + f not in names) == []
    assert share + "ir_robot/package.xml" in names
    assert share + "ament_index/resource_index/packages/ir_robot" in names
    assert meta["Name"] == "ir_robot" and meta["Version"] == ir_robot.__version__
    assert license_text == (ROOT / "LICENSE").read_text()
    # ros2 run / ros2 launch find the node executables by these names; `ir-robot` is the command
    from ir_robot.ros import graph

    scripts = {f"{k} = {v}" for k, v in entry_points["console_scripts"].items()}
    assert "ir-robot = ir_robot.cli:main" in scripts
    assert set(graph.console_scripts()) <= scripts


def test_one_version_and_a_complete_package_xml():
    xml = ET.parse(ROOT / "package.xml").getroot()
    assert xml.tag == "package" and xml.get("format") == "3" and xml.findtext("name") == "ir_robot"
    # package.xml holds the literal for the ROS tools; ir_robot.__version__ is the source setup.py reads
    assert xml.findtext("version") == ir_robot.__version__
    assert '"' + ir_robot.__version__ + '"' not in (ROOT / "setup.py").read_text()
    assert xml.findtext("license") == "Apache-2.0"
    depends = {e.text for tag in ("depend", "exec_depend") for e in xml.findall(tag)}
    assert sorted(ROSDEP_KEYS - depends) == []
    assert "python3-pytest" in {e.text for e in xml.findall("test_depend")}
    assert xml.findtext("export/build_type") == "ament_python"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_torch_only_in_an_extra_that_the_cpu_wheel_satisfies(wheel):
    """An unpinned torch on a machine without torch downloads a CUDA build of several GB: never in the base
    install, and the `learning` range accepts the CPU torch the Makefile installs first."""
    base = {canonicalize_name(r.name) for r in requirements(wheel)}
    assert "torch" not in base and "stable-baselines3" not in base
    (torch,) = [r for r in requirements(wheel, "learning") if r.name == "torch"]
    pinned = (ROOT / "torch-requirements.txt").read_text().split("==")[1].strip()
    assert torch.specifier.contains(pinned) and torch.specifier.contains(pinned + "+cpu")
    assert not torch.specifier.contains("3.0.0")
    # every base requirement starts at requirements.txt's pin and stops before the next major release
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pins = {canonicalize_name(k): v.strip() for k, v in pins.items()}
    for req in requirements(wheel):
        pin = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(pin), req
        assert not req.specifier.contains(f"{int(pin.split('.')[0]) + 1}.0"), req


def _third_party_imports():
    """(module path, top-level name, guarded) for every absolute import in ir_robot/ that runs and is not stdlib or
    ours; guarded: inside a ``try`` that handles ImportError (an optional feature)."""
    found = []
    for path in sorted((ROOT / "ir_robot").rglob("*.py")):
        tree = ast.parse(path.read_text())
        guarded_nodes = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                h.type is None
                or any(
                    isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError", "Exception")
                    for n in ast.walk(h.type)
                )
                for h in node.handlers
            ):
                guarded_nodes.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        # imports under ``if TYPE_CHECKING:`` never run (they name types for mypy, e.g. ``_typeshed``)
        type_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top not in ("ir_robot", "__future__"):
                    found.append((path.relative_to(ROOT).as_posix(), top, id(node) in guarded_nodes))
    return found


def test_every_third_party_import_is_declared(wheel):
    """Each import outside the standard library comes from a base requirement or an extra's own requirement;
    the ROS message and interface packages (which come with rclpy) only in ir_robot/ros or guarded. An import
    nobody declares fails here."""
    dists = importlib.metadata.packages_distributions()
    extras = wheel_metadata(wheel).get_all("Provides-Extra")
    assert set(extras) >= {"learning", "rl", "ros", "dev"}
    declared = {canonicalize_name(r.name) for e in [None, *extras] for r in requirements(wheel, e)}
    ros = closure(requirements(wheel, "ros"))
    undeclared = []
    for path, top, guarded in _third_party_imports():
        provided_by = {canonicalize_name(d) for d in dists.get(top, [])}
        if not provided_by:
            if not guarded:  # an optional import of something no pip package provides (tf2_ros) is fine
                undeclared.append((path, top, "not installed"))
            continue
        if provided_by & declared or (provided_by & ros and (path.startswith("ir_robot/ros/") or guarded)):
            continue
        undeclared.append((path, top, sorted(provided_by)))
    assert undeclared == []


IMPORT_ALL = r"""
import importlib, json, sys
from ir_robot.paths import share_dir
out = {"imported": [], "failed": {}, "share": str(share_dir())}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out["imported"].append(name)
    except ModuleNotFoundError as exc:
        out["failed"][name] = exc.name or repr(exc)
    except Exception as exc:
        out["failed"][name] = repr(exc)
print(json.dumps(out))
"""


def _pip_install(venv_python: Path, wheel: Path) -> subprocess.CompletedProcess:
    return run(
        [
            *(sys.executable, "-m", "pip", "--python", venv_python, "install", "--no-compile", "--no-index"),
            *("--find-links", WHEELHOUSE, "-c", ROOT / "requirements.txt", wheel),
        ],
        env=offline_pip_env(),
    )


def _fill_wheelhouse(wheel: Path) -> None:
    """Wheels of the base requirements at requirements.txt's pins, from the index `make install` uses (pip's
    cache makes this quick); written aside and moved in, so an interrupted fill leaves no half wheel."""
    reqs = [str(r) for r in requirements(wheel)]
    assert not any(canonicalize_name(Requirement(r).name) == "torch" for r in reqs)  # never a CUDA torch download
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    tmp = WHEELHOUSE.parent / f"wheelhouse.part-{os.getpid()}"
    try:
        res = run(
            [sys.executable, "-m", "pip", "wheel", "-w", tmp, "-c", ROOT / "requirements.txt", *reqs], env=clean_env()
        )
        assert res.returncode == 0, res.stdout + res.stderr
        for f in tmp.glob("*.whl"):
            os.replace(f, WHEELHOUSE / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def venv(tmp_path):
    """A fresh virtual environment with nothing installed (about 900 MB once the wheel is in; left to pytest's
    temporary-folder rotation, which keeps the last three runs: removing it here took 30 s on a busy disk)."""
    path = tmp_path / "venv"
    res = run([sys.executable, "-m", "venv", "--without-pip", path])
    assert res.returncode == 0, res.stderr
    return path


def test_wheel_installs_with_its_dependencies_and_runs_the_simulator(wheel, venv, tmp_path):
    py, bindir = venv / "bin" / "python", venv / "bin"
    res = _pip_install(py, wheel)
    if res.returncode != 0:  # a wheel missing from out/wheelhouse (a clean clone, a new pin): fetch, then retry
        _fill_wheelhouse(wheel)
        res = _pip_install(py, wheel)
    assert res.returncode == 0, res.stdout + res.stderr
    check = run([sys.executable, "-m", "pip", "--python", py, "check"], env=offline_pip_env())
    assert check.returncode == 0, check.stdout + check.stderr
    # the base install brings no torch (and nothing of the extras)
    probe = run(
        [
            py,
            "-I",
            "-c",
            "import importlib.util as u; print([m for m in ('torch', 'rclpy', "
            "'gymnasium', 'onnxruntime') if u.find_spec(m)])",
        ],
        env=clean_env(),
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr

    # every module of the wheel imports, or fails only for want of a package one of its extras provides
    with zipfile.ZipFile(wheel) as zf:
        modules = modules_in(zf.namelist())
    res = run([py, "-I", "-c", IMPORT_ALL, *modules], env=clean_env(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert Path(out["share"]) == venv / "share" / "ir_robot"  # the data installed with the wheel, not a checkout
    assert len(out["imported"]) + len(out["failed"]) == len(modules)
    dists = importlib.metadata.packages_distributions()
    base = closure(requirements(wheel))
    by_extra = {e: closure(requirements(wheel, e)) - base for e in ("learning", "rl", "ros")}
    wrong = {}
    for module, missing in out["failed"].items():
        provided_by = {canonicalize_name(d) for d in dists.get(missing.split(".")[0], [])}
        extra = next((e for e, names in by_extra.items() if provided_by & names), None)
        # ROS packages only in ir_robot.ros; the RL extra's (gymnasium, SB3) only in ir_robot.envs and
        # ir_robot.rl; elsewhere only the learning extra (torch) may be missing
        rl_module = module.startswith(("ir_robot.envs", "ir_robot.rl"))
        if extra is None or (extra == "ros") != module.startswith("ir_robot.ros") or (extra == "rl" and not rl_module):
            wrong[module] = missing
    assert wrong == {}
    assert {"ir_robot.sim.world", "ir_robot.devices", "ir_robot.control", "ir_robot.cli"} <= set(out["imported"])
    for exe in ("ir-robot", "ir_robot_sim", "ir_robot_controller"):
        assert (bindir / exe).is_file(), exe

    # the command a new user runs first, from the installed console script, outside any checkout
    res = run(
        [bindir / "ir-robot", "sim", "needle", "--seed", "0", "--out", tmp_path / "needle"],
        env=clean_env(),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out_dir = tmp_path / "needle"
    scene = json.loads((out_dir / "scene.json").read_text())
    assert scene["seed"] == 0 and len(scene["frames"]) >= 2
    for frame in scene["frames"]:
        stem = frame["file"][: -len(".png")]
        for suffix in ("", "_mask", "_mask_color", "_overlay"):
            assert (out_dir / f"{stem}{suffix}.png").stat().st_size > 0, (stem, suffix)
    assert (out_dir / "force_vs_depth.png").stat().st_size > 0
    assert len((out_dir / "force_vs_depth.csv").read_text().splitlines()) > 100


def test_colcon_style_install_puts_executables_in_lib_and_data_in_share(tmp_path):
    """What colcon runs for an ament_python package: setup.py install (single version, externally managed).
    setup.cfg sends the scripts to lib/ir_robot, where `ros2 run` and `ros2 launch` look for them."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    (tmp_path / "egg").mkdir()
    prefix = tmp_path / "install" / "ir_robot"
    res = run(
        [
            *(sys.executable, "setup.py", "egg_info", "--egg-base", tmp_path / "egg"),
            *("build", "--build-base", tmp_path / "build"),
            *("install", "--prefix", prefix, "--single-version-externally-managed", "--record", tmp_path / "rec"),
        ],
        cwd=src,
        env=clean_env(),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    from ir_robot.ros import graph

    for line in graph.console_scripts():
        exe = line.split(" = ")[0]
        assert (prefix / "lib" / "ir_robot" / exe).is_file(), exe
    assert (prefix / "share" / "ir_robot" / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "ir_robot").is_file()
    (site,) = (prefix / "lib").glob("python3*/site-packages")
    assert (site / "ir_robot" / "sim" / "world.py").is_file() and (site / "ir_robot" / "py.typed").is_file()
    code = "import sys; sys.path.insert(0, sys.argv[1]); from ir_robot.paths import share_dir; print(share_dir())"
    res = run([sys.executable, "-I", "-c", code, site], env=clean_env(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == prefix / "share" / "ir_robot"


def test_source_checkout_finds_its_own_data(root):
    assert share_dir() == root
    assert data_path("urdf", "ir_rig.urdf").is_file()
    assert all((root / folder).is_dir() for folder in DATA_DIRS)
