"""The examples in the package's docstrings (``>>>``) are run and must print what they show.

The modules are found the slow obvious way: every module of ``aquasurf_core`` whose source has
a line starting with ``>>>``. Each is imported and its examples run with :mod:`doctest` (no
option flags: the output must match exactly); every such line must be an example doctest
finds and runs, so an example in a place doctest does not look (a comment, a private helper
of another module) is reported rather than silently skipped."""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aquasurf_core"


def _example_lines(path: Path) -> int:
    return sum(line.lstrip().startswith(">>>") for line in path.read_text(
        encoding="utf-8").splitlines())


def modules_with_examples() -> dict[str, Path]:
    """Dotted module name -> file, for each package module with a ``>>>`` line."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if _example_lines(path):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def test_the_package_has_examples():
    assert {"aquasurf_core.space.activation", "aquasurf_core.ledgers"} <= set(
        modules_with_examples())


@pytest.mark.parametrize("name", sorted(modules_with_examples()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=0)
    for test in tests:
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()
    found = _example_lines(modules_with_examples()[name])
    assert result.attempted == found, (f"{name} has {found} '>>>' lines but doctest ran "
                                       f"{result.attempted} examples")
