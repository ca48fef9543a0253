"""The layers of docs/architecture.md hold: no module imports a layer above its own, and no import cycle.

The import graph is read from the source (every ``import`` / ``from ... import``, including those inside
functions and under ``TYPE_CHECKING``), so a lazy import cannot hide an upward dependency. Cycles are
looked for among the imports that run (a module-level or lazy import); an import under ``TYPE_CHECKING``
only names a type for the checker, so a type-only back reference (a helper module annotating its
argument with the class that calls it) is not a cycle. There is no list of exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ir_robot"

#: lowest first; a module may import its own layer or any layer below it (docs/architecture.md)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ir_robot", "ir_robot.core", "ir_robot.paths"),
    ("ir_robot.config", "ir_robot.urdf", "ir_robot.viz"),
    ("ir_robot.sim",),
    ("ir_robot.devices", "ir_robot.recording"),
    ("ir_robot.perception", "ir_robot.planning"),
    ("ir_robot.control",),
    ("ir_robot.envs", "ir_robot.rl"),
    ("ir_robot.evaluation",),
    ("ir_robot.ros",),
    ("ir_robot.benchmarks",),
    ("ir_robot.cli",),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = "", -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    if rank < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return rank


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                out.update(id(n) for n in ast.walk(stmt))
    return out


def imports_of(module: str, path: Path, known: set[str], *, runtime_only: bool = False) -> set[str]:
    """The ir_robot modules ``module`` imports (a ``from pkg import sub`` of a submodule counts as ``pkg.sub``);
    ``runtime_only`` leaves out the imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    skip = _type_checking_nodes(tree) if runtime_only else set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        for name in names:
            # the longest known module the name refers to (``import ir_robot.sim.world`` -> that module)
            parts = name.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and parts[0] == "ir_robot":
                dep = ".".join(parts)
                if dep != module:
                    out.add(dep)
    return out


def import_graph(*, runtime_only: bool = False) -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {m: imports_of(m, p, known, runtime_only=runtime_only) for m, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that ends where it starts), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if colour.get(dep, BLACK) == GREY:
                return stack[stack.index(dep) :] + [dep]
            if colour.get(dep) == WHITE:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def test_every_module_is_in_a_layer():
    for module in all_modules():
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    upward = sorted(
        f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
        for m, deps in graph.items()
        for d in deps
        if layer_of(d) > layer_of(m)
    )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    cycle = find_cycle(import_graph(runtime_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path, monkeypatch):
    """Negative control: the same code flags a planted upward import and a planted cycle."""
    graph = import_graph()
    graph["ir_robot.core.types"] = graph["ir_robot.core.types"] | {"ir_robot.ros.graph"}
    assert any(layer_of(d) > layer_of("ir_robot.core.types") for d in graph["ir_robot.core.types"])
    graph["ir_robot.core.errors"] = graph["ir_robot.core.errors"] | {"ir_robot.core.types"}
    graph["ir_robot.core.types"] = graph["ir_robot.core.types"] | {"ir_robot.core.errors"}
    assert find_cycle(graph) is not None
    lazy = tmp_path / "lazy.py"
    lazy.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ir_robot.sim import world\n"
        "def f():\n    from ir_robot.ros import graph\n    import ir_robot.cli\n"
    )
    known = set(all_modules())
    assert imports_of("ir_robot.core.lazy", lazy, known) == {"ir_robot.ros.graph", "ir_robot.cli", "ir_robot.sim.world"}
    assert imports_of("ir_robot.core.lazy", lazy, known, runtime_only=True) == {"ir_robot.ros.graph", "ir_robot.cli"}


@pytest.mark.parametrize("doc", ["docs/architecture.md"])
def test_the_layers_are_written_down(doc):
    text = (ROOT / doc).read_text()
    for layer in LAYERS:
        for prefix in layer:
            if prefix != "ir_robot":
                assert f"`{prefix.removeprefix('ir_robot.')}" in text, f"{doc} does not name {prefix}"
