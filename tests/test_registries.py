"""One name, one place (issue 18): the named spaces, the operator sets and the architectures
each have one registry, and every other place reads it.

For each registry a toy entry is added (monkeypatched, undone before the test ends) and found
everywhere it should be -- the command line's choices and defaults, a search's configuration,
the benchmark lists, grouped training, the built-in tasks, the pipeline's notebook parameters
-- without another edit; once undone, it is gone from all of them. Also: every benchmark
architecture and every architecture of a built-in task has a recipe, and the command line
builds its parser without importing torch (the registries are read only when needed)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from aquasurf_core import models, pipeline
from aquasurf_core.bench import table
from aquasurf_core.cli import build_parser
from aquasurf_core.paths import repo_root
from aquasurf_core.search.engine import SearchConfig, space_store
from aquasurf_core.search.tasks import (
    FINAL_EPOCHS_FACTOR,
    TaskError,
    builtin_tasks,
    get_task,
    registered_tasks,
)
from aquasurf_core.space.operators import DEFAULT_OPERATOR_SET, OPERATOR_SETS
from aquasurf_core.space.schemas import (
    DEFAULT_SPACE,
    NAMED_SPACES,
    THREE_NODE_SCHEMA,
    count_functions,
)
from aquasurf_core.training.grouped import build_grouped_model
from aquasurf_core.training.recipes import RECIPES, get_recipe

NOTEBOOKS = {nb.filename: nb for nb in pipeline.NOTEBOOKS}


def _accepts(argv: list[str]) -> bool:
    """Whether the command line parses ``argv`` (argparse exits 2 on an invalid choice)."""
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def test_the_defaults_are_registry_keys_and_the_command_lines_defaults():
    assert DEFAULT_SPACE in NAMED_SPACES and DEFAULT_OPERATOR_SET in OPERATOR_SETS
    config = SearchConfig()
    assert (config.space, config.operators) == (DEFAULT_SPACE, DEFAULT_OPERATOR_SET)
    run = build_parser().parse_args(["search", "run", "--task", "t"])
    assert (run.space, run.operators) == (DEFAULT_SPACE, DEFAULT_OPERATOR_SET)
    assert build_parser().parse_args(["space", "map"]).space == DEFAULT_SPACE
    count = build_parser().parse_args(["space", "count", "x"])
    assert count.operators == DEFAULT_OPERATOR_SET
    inspect = build_parser().parse_args(["inspect"])
    assert inspect.bench == models.BENCHMARK_ARCHS[0] == "cnn"


def test_a_toy_space_is_offered_everywhere_without_another_edit(monkeypatch):
    with pytest.raises(ValueError, match="space must be one of '3-node', '4-node', got 'toy'"):
        SearchConfig(space="toy")
    assert not _accepts(["search", "run", "--task", "t", "--space", "toy"])
    monkeypatch.setitem(NAMED_SPACES, "toy", (THREE_NODE_SCHEMA,))
    assert SearchConfig(space="toy").space == "toy"
    assert build_parser().parse_args(["search", "run", "--task", "t", "--space", "toy"]).space \
        == "toy"
    assert build_parser().parse_args(["space", "map", "--space", "toy"]).space == "toy"
    # the search builds the space from the registry: the 3-node schema, so the 3-node store
    assert space_store("toy").path == space_store("3-node").path
    monkeypatch.undo()
    assert not _accepts(["space", "map", "--space", "toy"])
    with pytest.raises(ValueError, match="space must be one of"):
        SearchConfig(space="toy")


def test_a_toy_operator_set_is_offered_everywhere_without_another_edit(monkeypatch):
    with pytest.raises(ValueError, match="operators must be one of 'paper', 'coatnet'"):
        SearchConfig(operators="toy")
    monkeypatch.setitem(OPERATOR_SETS, "toy", OPERATOR_SETS["paper"])
    assert SearchConfig(operators="toy").operators == "toy"
    for argv in (["space", "count", THREE_NODE_SCHEMA, "--operators", "toy"],
                 ["space", "build", THREE_NODE_SCHEMA, "--operators", "toy"],
                 ["search", "run", "--task", "t", "--operators", "toy"]):
        assert build_parser().parse_args(argv).operators == "toy", argv
    assert count_functions(THREE_NODE_SCHEMA, "toy") == 7 * 27 ** 2  # the paper's operators
    monkeypatch.undo()
    assert not _accepts(["space", "count", THREE_NODE_SCHEMA, "--operators", "toy"])
    with pytest.raises(ValueError, match="operators must be one of"):
        SearchConfig(operators="toy")


def test_a_toy_benchmark_architecture_reaches_every_list_without_another_edit(monkeypatch):
    """A copy of the cnn registered as the benchmark architecture "toy", with its recipe (the
    training stage's table, keyed by the architecture's name)."""
    monkeypatch.setitem(models.ARCHITECTURES, "toy",
                        replace(models.ARCHITECTURES["cnn"], name="toy", benchmark=True))
    monkeypatch.setitem(RECIPES, "toy", get_recipe("cnn", epochs=1))
    assert list(models.BENCHMARK_ARCHS) == ["cnn", "resnet", "vit", "toy"]
    # the command line
    for argv in (["bench", "build", "--arch", "toy"], ["bench", "status", "--arch", "toy"],
                 ["inspect", "--bench", "toy"]):
        assert _accepts(argv), argv
    # the shipped benchmarks: expected, and the error says how to build it
    assert list(table.SHIPPED) == list(models.BENCHMARK_ARCHS)
    with pytest.raises(FileNotFoundError, match="aquasurf bench build --arch toy"):
        table.load("toy")
    # grouped training fuses it
    assert build_grouped_model("toy", ["relu(x)", "tanh(x)"], seed=0).copies == 2
    # the built-in task and its final twin, with the toy's recipe
    assert {"mnist1d-toy", "mnist1d-toy-final"} <= set(builtin_tasks())
    assert get_task("mnist1d-toy").info["arch"] == "toy"
    assert get_task("mnist1d-toy").info["recipe"]["epochs"] == 1
    assert get_task("mnist1d-toy-final").info["recipe"]["epochs"] == FINAL_EPOCHS_FACTOR
    # the pipeline's notebook parameters that list the benchmark architectures
    for profile in ("smoke", "paper", "full"):
        assert NOTEBOOKS["00_benchmarks.ipynb"].parameters(profile)["archs"] == [
            "cnn", "resnet", "vit", "toy"], profile
    for profile in ("paper", "full"):
        assert "toy" in NOTEBOOKS["02_fim_eigenvalues.ipynb"].parameters(profile)[
            "invalid_archs"]
    monkeypatch.undo()
    assert list(models.BENCHMARK_ARCHS) == ["cnn", "resnet", "vit"]
    assert not _accepts(["bench", "build", "--arch", "toy"])
    assert "toy" not in table.SHIPPED and "mnist1d-toy" not in registered_tasks()
    with pytest.raises(TaskError, match="unknown task 'mnist1d-toy'"):
        get_task("mnist1d-toy")
    with pytest.raises(ValueError, match="grouped training fuses the benchmark architectures"):
        build_grouped_model("toy", ["relu(x)"])
    assert NOTEBOOKS["00_benchmarks.ipynb"].parameters("smoke")["archs"] == [
        "cnn", "resnet", "vit"]


@pytest.mark.parametrize("arch", list(models.BENCHMARK_ARCHS))
def test_every_benchmark_architecture_has_a_recipe_and_a_task(arch):
    assert arch in RECIPES
    for name, epochs in ((f"mnist1d-{arch}", RECIPES[arch].epochs),
                         (f"mnist1d-{arch}-final", FINAL_EPOCHS_FACTOR * RECIPES[arch].epochs)):
        task = get_task(name)
        assert task.info["arch"] == arch and task.info["recipe"]["epochs"] == epochs, name


def test_every_builtin_task_trains_a_registered_architecture_with_a_recipe():
    for name in builtin_tasks():
        arch = get_task(name).info["arch"]
        assert arch in models.ARCHITECTURES and arch in RECIPES, (name, arch)


def test_the_command_line_reads_the_registries_only_when_it_needs_them():
    """Building the parser, parsing a subcommand without such options and the top-level help
    import no torch (the registries' modules do); checking a space name reads the registry."""
    code = ("import sys\n"
            "from aquasurf_core.cli import build_parser\n"
            "parser = build_parser()\n"
            "parser.parse_args(['reproduce', '--profile', 'smoke'])\n"
            "parser.format_help()\n"
            "assert 'torch' not in sys.modules, 'the parser imported torch'\n"
            "assert parser.parse_args(['search', 'run', '--task', 't', '--space', '3-node'])"
            ".space == '3-node'\n"
            "assert 'aquasurf_core.space.schemas' in sys.modules\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=repo_root())
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
