"""The package's shape: stages import only earlier stages, no import cycles between modules,
no private name used outside its module, tests mirror the package tree.

Imports are read from the source (``ast``), the slow obvious way, including imports inside
functions (the lazy ones count too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aquasurf_core"

#: Each top-level part of the package and the parts it may import (besides itself). The
#: stages follow the paper's flow: space -> models -> features -> training -> bench ->
#: embedding -> search -> figures; infrastructure (paths, storage, paper, machine) is below
#: everything; export, pipeline and cli are above.
ALLOWED = {
    "paths": set(),
    "storage": set(),
    "ledgers": set(),  # infrastructure too: the base of the SQLite ledgers
    "live_names": set(),  # infrastructure: a registry's names read at every use
    "paper": set(),
    "machine": set(),
    "space": {"paths", "storage"},
    "models": {"space", "live_names"},
    "features": {"space", "models"},
    "training": {"paths", "space", "models"},
    "bench": {"paths", "storage", "machine", "space", "models", "features", "training",
              "ledgers"},
    "embedding": {"paths", "storage", "machine", "space", "features", "bench"},
    "search": {"paths", "storage", "machine", "space", "models", "features", "training", "bench",
               "embedding", "ledgers"},
    # the embeddings' interactive view: above embedding, beside search (neither imports it)
    "inspector": {"paths", "storage", "machine", "space", "features", "bench", "embedding"},
    "figures": {"paper", "space", "models", "features", "training", "bench", "embedding",
                "search"},
    "export": {"storage"},
    "pipeline": {"paths", "models", "search"},  # the registries its lists are read from
    "book": {"export", "pipeline"},
    "cli": {"paths", "live_names", "space", "models", "features", "training", "bench",
            "embedding", "search", "inspector", "pipeline"},
    "__init__": set(),
    "__main__": {"cli"},
}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` of every ``aquasurf_core`` import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "aquasurf_core":
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aquasurf_core":
                    found.append((alias.name, [], node.lineno))
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def resolve(module: str, name: str, known: dict[str, Path]) -> str:
    """The module an ``from module import name`` refers to (a submodule when it is one)."""
    return f"{module}.{name}" if f"{module}.{name}" in known else module


def edges(known: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for target, names, _ in imports(path):
            for name in names or [""]:
                dest = resolve(target, name, known) if name else target
                if dest in known and dest != module:
                    graph[module].add(dest)
    return graph


def test_every_part_is_known():
    parts = {part_of(m) for m in modules()}
    assert parts <= set(ALLOWED), sorted(parts - set(ALLOWED))
    assert {"space", "features", "bench", "embedding", "figures"} <= parts


def test_stages_import_only_earlier_stages():
    known = modules()
    wrong = []
    for module, path in known.items():
        part = part_of(module)
        for target, names, line in imports(path):
            for name in names or [""]:
                dest = part_of(resolve(target, name, known) if name else target)
                if (target, name) == ("aquasurf_core", "__version__"):
                    continue
                if part != "__init__" and dest not in ALLOWED[part] | {part}:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} ({part}) imports {dest}")
    assert wrong == []


def test_module_references_in_docstrings_name_existing_modules():
    """Every :mod:`target` in the package names one of its modules (``~`` and a leading ``.``,
    relative to the referring module's package, allowed); a renamed module leaves none stale."""
    known = modules()
    stale = []
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r":mod:`~?([A-Za-z0-9_.]+)`", text):
            target = match.group(1)
            full = f"{package}{target}" if target.startswith(".") else target
            if full not in known:
                line = text.count("\n", 0, match.start()) + 1
                stale.append(f"{path.relative_to(ROOT)}:{line} :mod:`{target}`")
    assert stale == []


def test_no_import_cycles_between_modules():
    """Including through a package's ``__init__``: a module that imports its own package
    (rather than the sibling module) would see it half-initialised."""
    graph = edges(modules())
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("tree", ["aquasurf_core", "tests", "benchmarks", "scripts"])
def test_no_private_name_is_imported_from_another_module(tree):
    offenders = []
    for path in sorted((ROOT / tree).rglob("*.py")):
        for module, names, line in imports(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private or any(p.startswith("_") and p != "__init__"
                              for p in module.split(".")):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: from {module} import "
                                 f"{', '.join(private) or '...'}")
    assert offenders == []


def test_tests_mirror_the_package():
    """Every test folder is a package folder, and every package folder with code has tests."""
    package_dirs = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py")
                    .exists()}
    test_dirs = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()
                 and not p.name.startswith((".", "__"))}
    assert test_dirs <= package_dirs, sorted(test_dirs - package_dirs)
    assert package_dirs - {"data"} <= test_dirs, sorted(package_dirs - test_dirs)


def test_top_level_names_resolve_lazily():
    import subprocess
    import sys

    code = ("import sys, aquasurf_core as a\n"
            "assert 'torch' not in sys.modules, 'import aquasurf_core must stay light'\n"
            "for name in a.__all__:\n"
            "    getattr(a, name)\n"
            "print(len(a.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 30
