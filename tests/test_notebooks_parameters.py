"""A notebook opened in JupyterLab runs the smoke profile, and its parameters do what they say.

* Every notebook's ``parameters`` cell, read with ``ast`` (never run), assigns exactly the smoke
  profile's values of :data:`aquasurf_core.pipeline.NOTEBOOKS`, and says in its first line how
  to run the paper profile; the registry states a smoke value for every parameter another
  profile sets.
* The next cell calls :func:`~aquasurf_core.pipeline.apply_profile` with the notebook's name.
* :func:`~aquasurf_core.pipeline.apply_profile` on plain dictionaries: a profile typed in by
  hand loads the registry's values; injected names and names changed in the cell are kept.
* In a real kernel, on the first cells of notebook 04: ``papermill -p trials 5``, ``papermill
  -p profile paper -p trials 3`` (a passed value equal to the smoke value), the pipeline's
  paper run, and a JupyterLab-style run of an edited cell each end with the values they asked
  for.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import nbformat
import pytest

from aquasurf_core.pipeline import (
    CELL_FIGURES_DIR,
    CELL_PROFILE,
    COMMON_PARAMETERS,
    NOTEBOOKS,
    NOTEBOOKS_DIR,
    Notebook,
    PipelineError,
    apply_profile,
    injected_names,
    output_paths,
    profile_note,
    profile_values,
    run_pipeline,
)

IDS = [nb.stem for nb in NOTEBOOKS]


def parameters_cell(path: Path) -> tuple[int, str]:
    cells = nbformat.read(path, as_version=4).cells
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return index, cells[index].source


def literal_assignments(source: str) -> dict:
    """``{name: value}`` of a cell made only of ``name = <literal>`` statements."""
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.targets[0], ast.Name), ast.unparse(node)
        name = node.targets[0].id
        assert name not in values, f"{name} assigned twice"
        values[name] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("entry", NOTEBOOKS, ids=IDS)
def test_the_parameters_cell_holds_the_smoke_profile(entry):
    _, source = parameters_cell(NOTEBOOKS_DIR / entry.filename)
    values = literal_assignments(source)
    assert set(COMMON_PARAMETERS) <= set(values)
    assert values["profile"] == CELL_PROFILE == "smoke"
    assert values["figures_dir"] == CELL_FIGURES_DIR
    differing = {name: (values.get(name, "<not assigned>"), smoke)
                 for name, smoke in entry.parameters("smoke").items()
                 if values.get(name, object()) != smoke}
    assert differing == {}, f"{entry.filename}: cell value vs registry smoke value: {differing}"
    # the first line tells a JupyterLab user how to run the paper profile
    first = source.splitlines()[0]
    assert first.startswith('profile = "smoke"  #') and '"paper"' in first, first


@pytest.mark.parametrize("entry", NOTEBOOKS, ids=IDS)
def test_every_profile_dependent_parameter_has_a_smoke_value(entry):
    others = set(entry.paper) | set(entry.full)
    assert others - set(entry.smoke) == set(), (
        f"{entry.filename}: the paper/full profiles set parameters the smoke profile does not "
        "state; add their smoke values (the parameters cell's) to its registry entry")


@pytest.mark.parametrize("entry", NOTEBOOKS, ids=IDS)
def test_the_next_cell_applies_the_profile(entry):
    path = NOTEBOOKS_DIR / entry.filename
    index, _ = parameters_cell(path)
    source = nbformat.read(path, as_version=4).cells[index + 1].source
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "apply_profile"]
    assert len(calls) == 1, source
    (call,) = calls
    assert ast.unparse(call.args[0]) == "globals()"
    assert ast.literal_eval(call.args[1]) == entry.filename


REGISTRY = [Notebook("01_toy.ipynb", smoke={"trials": 3, "methods": ["knr"]},
                     paper={"trials": 100, "methods": ["knr", "rfr"], "extra": 1},
                     full={"trials": 200})]


def cell_namespace(**changes) -> dict:
    """The toy notebook's variables after its parameters cell ran (the smoke values)."""
    return {"profile": "smoke", "figures_dir": CELL_FIGURES_DIR, "cache_dir": "c", "seed": 0,
            "trials": 3, "methods": ["knr"], "extra": 0, **changes}


def test_apply_profile_loads_the_named_profile(tmp_path):
    ns = cell_namespace(profile="paper")
    lines = []
    changed = apply_profile(ns, "01_toy.ipynb", injected=(), registry=REGISTRY,
                            output_root=tmp_path, log=lines.append)
    figures = str(output_paths("paper", tmp_path)[1])
    assert changed == {"figures_dir": figures, "trials": 100, "methods": ["knr", "rfr"],
                       "extra": 1}
    assert ns == cell_namespace(profile="paper", **changed)
    assert len(lines) == 1 and "paper profile" in lines[0] and "trials=100" in lines[0]
    full = cell_namespace(profile="full")
    apply_profile(full, "01", injected=(), registry=REGISTRY, output_root=tmp_path, log=None)
    assert (full["trials"], full["methods"]) == (200, ["knr", "rfr"])  # paper's + full's


def test_apply_profile_keeps_injected_and_edited_values(tmp_path):
    # papermill passed trials=3 (equal to the smoke value) and methods: both kept
    ns = cell_namespace(profile="paper", trials=3, methods=["svr"])
    apply_profile(ns, "01_toy.ipynb", injected={"profile", "trials", "methods"},
                  registry=REGISTRY, output_root=tmp_path, log=None)
    assert (ns["trials"], ns["methods"], ns["extra"]) == (3, ["svr"], 1)
    # changed by hand in the cell (no papermill): kept, and said so
    ns, lines = cell_namespace(profile="paper", trials=7), []
    apply_profile(ns, "01_toy.ipynb", injected=(), registry=REGISTRY, output_root=tmp_path,
                  log=lines.append)
    assert (ns["trials"], ns["methods"]) == (7, ["knr", "rfr"])
    assert "kept as changed in the parameters cell: trials=7" in lines[0]


def test_apply_profile_leaves_the_smoke_profile_alone_and_refuses_unknown_ones():
    ns, lines = cell_namespace(trials=9), []
    assert apply_profile(ns, "01_toy.ipynb", injected=(), registry=REGISTRY,
                         log=lines.append) == {}
    assert ns == cell_namespace(trials=9) and lines == []
    with pytest.raises(PipelineError, match="unknown profile 'papr'"):
        apply_profile(cell_namespace(profile="papr"), "01_toy.ipynb", injected=(),
                      registry=REGISTRY)
    with pytest.raises(PipelineError, match="matches no registered notebook"):
        apply_profile(cell_namespace(profile="paper"), "07_none.ipynb", injected=(),
                      registry=REGISTRY)
    with pytest.raises(PipelineError, match="no `profile` assigned"):
        apply_profile({}, "01_toy.ipynb", injected=(), registry=REGISTRY)


def test_injected_names_reads_only_papermills_cell():
    assert injected_names("# Parameters\nprofile = 'paper'\ntrials = 5\n") == {"profile",
                                                                               "trials"}
    assert injected_names('profile = "smoke"\ntrials = 3\n') == set()  # the parameters cell
    assert injected_names("apply_profile(globals(), '04')") == set()
    assert injected_names("") == set()


def test_profile_values_of_a_real_notebook():
    entry = next(nb for nb in NOTEBOOKS if nb.number == "04")
    assert profile_values("04", "smoke") == {"figures_dir": CELL_FIGURES_DIR,
                                             **entry.parameters("smoke")}
    paper = profile_values("04_benchmark_search.ipynb", "paper")
    assert paper["trials"] == entry.parameters("paper")["trials"]
    assert paper["figures_dir"] == str(output_paths("paper")[1])


# ---------------------------------------------------------------- in a kernel, for real
DUMP = ("import json\nprint('VALUES=' + json.dumps({name: globals()[name] for name in %r}))")


@pytest.fixture
def head_of_04(tmp_path):
    """Notebook 04's first cells (title, parameters, apply_profile) and a cell printing the
    variables, as ``<tmp>/notebooks/04_benchmark_search.ipynb``; its registry entry without
    declared outputs; the names printed."""
    entry = next(nb for nb in NOTEBOOKS if nb.number == "04")
    nb = nbformat.read(NOTEBOOKS_DIR / entry.filename, as_version=4)
    index, _ = parameters_cell(NOTEBOOKS_DIR / entry.filename)
    names = sorted({*COMMON_PARAMETERS, *entry.smoke, *entry.paper})
    nb.cells = nb.cells[:index + 2] + [nbformat.v4.new_code_cell(DUMP % (names,))]
    path = tmp_path / "notebooks" / entry.filename
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path, dataclasses.replace(entry, outputs=()), names


def printed_values(path: Path) -> dict:
    text = "".join(o.get("text", "") for c in nbformat.read(path, as_version=4).cells
                   if c.cell_type == "code" for o in c.get("outputs", []))
    (line,) = [ln for ln in text.splitlines() if ln.startswith("VALUES=")]
    return json.loads(line.removeprefix("VALUES="))


def run_papermill(path: Path, out: Path, parameters: dict) -> dict:
    import papermill

    papermill.execute_notebook(path, out, parameters=parameters, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False)
    return printed_values(out)


def test_papermill_parameters_win_in_a_kernel(head_of_04, tmp_path):
    path, entry, _ = head_of_04
    # papermill -p trials 5: the smoke profile with trials 5
    values = run_papermill(path, tmp_path / "a.ipynb", {"trials": 5})
    assert values["profile"] == "smoke" and values["figures_dir"] == CELL_FIGURES_DIR
    assert {k: values[k] for k in entry.smoke} == {**entry.parameters("smoke"), "trials": 5}
    # papermill -p profile paper -p trials 3: the paper profile, trials 3 though 3 is smoke's
    values = run_papermill(path, tmp_path / "b.ipynb", {"profile": "paper", "trials": 3})
    assert {k: values[k] for k in entry.paper} == {**entry.parameters("paper"), "trials": 3}
    assert values["figures_dir"] == str(output_paths("paper")[1])


def test_the_pipelines_paper_run_passes_the_registry_values(head_of_04, tmp_path):
    path, entry, _ = head_of_04
    run_pipeline("paper", registry=[entry], notebooks_dir=path.parent,
                 output_root=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)
    runs_dir, figures_dir = output_paths("paper", tmp_path / "out")
    values = printed_values(runs_dir / entry.filename)
    assert {k: values[k] for k in entry.paper} == entry.parameters("paper")
    assert values["figures_dir"] == str(figures_dir) and values["profile"] == "paper"
    assert values["cache_dir"] == str((tmp_path / "cache").resolve())


def test_a_profile_typed_into_the_cell_in_jupyterlab(head_of_04, tmp_path):
    """As JupyterLab runs it: no papermill, the parameters cell edited by hand."""
    from nbclient import NotebookClient

    path, entry, _ = head_of_04
    nb = nbformat.read(path, as_version=4)
    index, source = parameters_cell(path)
    source = source.replace('profile = "smoke"', 'profile = "paper"', 1)
    assert source.count("\ntrials = 3  #") == 1
    nb.cells[index].source = source.replace("\ntrials = 3  #", "\ntrials = 7  #")
    NotebookClient(nb, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out = tmp_path / "lab.ipynb"
    nbformat.write(nb, out)
    values = printed_values(out)
    assert {k: values[k] for k in entry.paper} == {**entry.parameters("paper"), "trials": 7}
    said = "".join(o.get("text", "") for o in nb.cells[index + 1].outputs)
    assert "the paper profile's settings" in said and "trials=7" in said


def test_the_smoke_profile_says_it_is_toy_sized():
    assert "toy-sized" in profile_note("smoke") and 'profile = "paper"' in profile_note("smoke")
    assert profile_note("paper") == profile_note("full") == ""
    with pytest.raises(PipelineError, match="unknown profile"):
        profile_note("quick")
