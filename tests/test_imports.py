"""The architecture, enforced: imports point down the stages, never in a cycle, and no module
imports another module's private names.

Stages, lowest first (a module may import its own package and any lower stage):
``models`` < ``suites`` (the zoo and the paper's declarations: they never import ``harness``) <
``harness.errors`` < ``harness.paths`` < ``plan`` < ``store`` < ``costs``, ``training``
(siblings: neither imports the other) < ``execute`` < ``report``, ``bench`` (siblings) < ``cli``.
Every import counts: top-level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "models", "suites")

#: (module prefix, stage): the longest matching prefix decides.
STAGES = {
    "models": 0, "suites": 1,
    "harness": 2,  # the root package's __init__ only (it imports nothing)
    "harness.errors": 2, "harness.paths": 3,
    "harness.plan": 4, "harness.store": 5,
    "harness.costs": 6, "harness.training": 6,
    "harness.execute": 7,
    "harness.report": 8, "harness.bench": 8,
    "harness.cli": 9, "harness.__main__": 10,
}


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = modules()


def package_of(name: str) -> str:
    """The unit a stage is given to: ``harness.report.tables`` -> ``harness.report``."""
    return max((p for p in STAGES if name == p or (p != "harness" and name.startswith(p + "."))),
               key=len)


def imports(name: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the module."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                here = here[:len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            names = [a.name for a in node.names]
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            yield base, [n for n in names if f"{base}.{n}" not in MODULES], node.lineno
            for sub in subs:
                yield sub, [], node.lineno


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, _, _ in imports(name, path):
            while target and target not in MODULES:  # `import a.b.c` where c is not a module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def test_the_stages_cover_every_module() -> None:
    missing = [m for m in MODULES if m.startswith("harness.") and not any(
        m == p or m.startswith(p + ".") for p in STAGES if p != "harness")]
    assert not missing, f"give these modules a stage in STAGES: {missing}"


def test_imports_point_down_the_stages() -> None:
    wrong = []
    for name, targets in edges().items():
        mine = package_of(name)
        for target in targets:
            theirs = package_of(target)
            if theirs != mine and STAGES[theirs] >= STAGES[mine]:
                wrong.append(f"{name} imports {target} ({mine} may not import {theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_is_imported_from_another_module() -> None:
    wrong = [f"{name}:{line} imports {n} from {target}"
             for name, path in MODULES.items()
             for target, names, line in imports(name, path)
             if target.split(".")[0] in PACKAGES
             for n in names if n.startswith("_") and not n.startswith("__")]
    assert not wrong, "\n".join(wrong)


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    """The rules above fail on a planted cycle, back-edge and private import."""
    global MODULES
    saved = MODULES
    fake = {"harness.plan.a": "from harness.report.b import _x\n",
            "harness.report.b": "import harness.plan.a\n"}
    MODULES = dict(saved)
    try:
        for name, text in fake.items():
            path = tmp_path / f"{name}.py"
            path.write_text(text)
            MODULES[name] = path
        for check in (test_imports_point_down_the_stages, test_no_import_cycle,
                      test_no_private_name_is_imported_from_another_module):
            with pytest.raises(AssertionError):
                check()
    finally:
        MODULES = saved
