"""The papermill pipeline: run the numbered notebooks in order and collect what they produce.

``aquasurf reproduce --profile smoke|paper|full [--only 01 02] [--output-root DIR]`` (also
``python -m aquasurf_core reproduce ...``, which is what ``make reproduce`` runs) executes every
notebook of :data:`NOTEBOOKS` in order with papermill (kernel ``python3`` of this interpreter,
working directory ``notebooks/``), write the executed copies to
``<output root>/papermill_runs/<profile>/``, and write a ``manifest.json`` (notebook, seconds,
files produced; under ``shared`` the ``plotly.min.js`` their HTML figures load) next to the
figures the notebooks saved with :mod:`aquasurf_core.export`.

Adding a notebook is adding one :class:`Notebook` entry to :data:`NOTEBOOKS`, giving the
papermill parameters of each profile. Every notebook also receives :data:`COMMON_PARAMETERS`:

* ``profile`` -- ``"smoke"`` (seconds, for tests), ``"paper"`` (the paper's settings,
  reading the shipped results of the long training campaigns) or ``"full"`` (the paper's
  settings recomputing everything, the campaigns included: hours on 2 cores; a notebook's
  ``full`` parameters are its ``paper`` ones with its ``full`` entries on top);
* ``figures_dir`` -- absolute path where :func:`aquasurf_core.export.save_figure` and
  :func:`~aquasurf_core.export.save_table` must write (``<root>/figures`` for the paper
  profile, ``<root>/papermill_runs/<profile>/figures`` for smoke and full, so tests and
  full reruns never touch the committed figures);
* ``cache_dir`` -- absolute path of the shared cache (:func:`aquasurf_core.paths.cache_dir`);
  the notebook passes it to :func:`aquasurf_core.paths.set_cache_dir` first thing, so every
  library call in the kernel uses it;
* ``seed`` -- ``0``.

A notebook must have a cell tagged ``parameters`` assigning every common parameter and every
parameter its registry entry passes; the runner checks this before running anything, as it
checks that every selected notebook exists. Nothing is skipped silently: a missing notebook, an
undeclared parameter, a failing cell or a missing declared output stops the run with an error
naming the notebook (and the cell), and the command exits non-zero.

**A notebook opened in JupyterLab runs the smoke profile.** Each notebook's ``parameters`` cell
holds exactly its :data:`NOTEBOOKS` entry's ``smoke`` values
(``tests/test_notebooks_parameters.py`` compares them) and, for every parameter another
profile sets, the registry states its smoke value too. The cell after it calls
:func:`apply_profile`: with ``profile = "paper"`` (or ``"full"``) typed into the cell by
hand, it takes that profile's values from the registry -- but never over a value papermill
injected (papermill's own cell, run just before it) nor over one the user changed in the
cell. So ``make reproduce`` (which passes every value) and ``papermill -p trials 5 ...`` run
exactly what they pass.

**Static images beside interactive figures.** The kernels of the pipeline run with
:data:`KERNEL_ENVIRONMENT`: plotly's renderer ``plotly_mimetype+png``, so every figure a cell
displays is stored as plotly JSON (JupyterLab draws it interactively) *and* as a PNG (what
``jupyter nbconvert --to html``, GitHub and :mod:`aquasurf_core.book` fall back on).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aquasurf_core import paths
from aquasurf_core.paths import repo_root

PROFILES = ("smoke", "paper", "full")
COMMON_PARAMETERS = ("profile", "figures_dir", "cache_dir", "seed")
DEFAULT_SEED = 0
KERNEL_NAME = "python3"
MANIFEST_NAME = "manifest.json"
ENV_OUTPUT_ROOT = "AQUASURF_OUTPUT_ROOT"
FIGURE_SUFFIXES = (".png", ".html", ".csv", ".md")
#: Files of the figures dir that belong to no one notebook: the plotly.js bundle every HTML
#: figure loads (:data:`aquasurf_core.export.PLOTLYJS_NAME`), listed apart in the manifest.
SHARED_FILES = ("plotly.min.js",)
#: Environment of the notebooks' kernels in a pipeline run: plotly's renderer stores each
#: displayed figure as plotly JSON and as a PNG (read by plotly when it is imported).
KERNEL_ENVIRONMENT = {"PLOTLY_RENDERER": "plotly_mimetype+png"}
#: The profile and figures directory a notebook's ``parameters`` cell assigns (the smoke
#: profile's; ``figures_dir`` relative to ``notebooks/``, where JupyterLab starts the kernel).
CELL_PROFILE = "smoke"
CELL_FIGURES_DIR = "../papermill_runs/smoke/figures"
#: The first line of the cell papermill injects (its ``PythonTranslator`` comment).
PAPERMILL_COMMENT = "# Parameters"

REPO_ROOT = repo_root()
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


class PipelineError(RuntimeError):
    """The pipeline cannot run, or a notebook failed; the message names the notebook."""


class NotebookFailed(PipelineError):
    """A cell of a notebook raised. ``notebook``, ``cell_index`` (0-based, in the source
    notebook; ``None`` for the injected parameters cell), ``exec_count``, ``ename``, ``evalue``
    and ``executed_copy`` (the output notebook, with the traceback) describe where."""

    def __init__(self, message: str, *, notebook: str, cell_index: int | None,
                 exec_count: int | None, ename: str, evalue: str, executed_copy: Path):
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.executed_copy = executed_copy


@dataclass(frozen=True)
class Notebook:
    """One registry entry: a notebook file in ``notebooks/`` and its papermill parameters per
    profile (on top of :data:`COMMON_PARAMETERS`). ``outputs`` optionally lists the file stems
    (e.g. ``"01_operator_counts"``) the notebook must write into ``figures_dir``; the runner
    fails if one is not produced. A parameter's value may be a function of no arguments,
    called by :meth:`parameters`: a list read from a registry then (:func:`benchmark_archs`)."""

    filename: str
    smoke: Mapping[str, Any] = field(default_factory=dict)
    paper: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    full: Mapping[str, Any] = field(default_factory=dict)  # on top of ``paper``

    def __post_init__(self) -> None:
        if not (self.filename.endswith(".ipynb") and self.filename[:2].isdigit()
                and "/" not in self.filename):
            raise ValueError(f"notebook file name {self.filename!r} must look like "
                             "'NN_name.ipynb' (two-digit number first, no directory)")
        for profile in PROFILES:
            clash = set(getattr(self, profile)) & set(COMMON_PARAMETERS)
            if clash:
                raise ValueError(f"{self.filename}: {profile} parameters {sorted(clash)} are "
                                 "common parameters set by the runner")

    @property
    def number(self) -> str:
        """The notebook's two-digit number, the first two characters of its file name."""
        return self.filename[:2]

    @property
    def stem(self) -> str:
        """The file name without ``.ipynb`` (e.g. ``"01_search_space"``; ``--only`` takes it)."""
        return self.filename.removesuffix(".ipynb")

    def parameters(self, profile: str) -> dict[str, Any]:
        """The notebook-specific parameters of ``profile`` (without the common ones); those
        of ``full`` are ``paper``'s updated with ``full``'s. A value given as a function is
        read from its registry now (:func:`benchmark_archs`, :func:`_experiment_methods`)."""
        _check_profile(profile)
        chosen = {**self.paper, **self.full} if profile == "full" else getattr(self, profile)
        return {key: value() if callable(value) else value for key, value in chosen.items()}


def benchmark_archs() -> list[str]:
    """The benchmark architectures, :data:`aquasurf_core.models.BENCHMARK_ARCHS`: the value of
    the notebook parameters that list them, read when the parameters are asked for (importing
    the pipeline imports no torch)."""
    from aquasurf_core.models import BENCHMARK_ARCHS

    return list(BENCHMARK_ARCHS)


def _experiment_methods() -> list[str]:
    """Notebook 04's main experiment: every surrogate the registry marks ``experiment``
    (:func:`aquasurf_core.search.surrogates.experiment_methods`)."""
    from aquasurf_core.search.surrogates import experiment_methods

    return experiment_methods()


# The registry, in execution order. Adding a notebook = adding an entry here.
NOTEBOOKS: list[Notebook] = [
    Notebook(
        "00_benchmarks.ipynb",
        smoke={"source": "build", "archs": benchmark_archs, "smoke_functions": 16,
               "smoke_epochs": 1, "smoke_train_subset": 300},
        paper={"source": "shipped", "archs": benchmark_archs},
        full={"source": "rebuild"},
        outputs=("00_recipes", "00_failure_counts", "00_fig1_histograms", "00_fim_reasons",
                 "00_fig2_correlations", "00_fig2_pairwise", "00_baselines", "00_top10"),
    ),
    Notebook(
        "01_search_space.ipynb",
        smoke={"build_four_node": False, "umap_functions": 600},
        paper={"build_four_node": True, "umap_functions": None},
        outputs=("01_space_counts", "01_umap_outputs", "01_umap_reconstructions"),
    ),
    Notebook(
        "02_fim_eigenvalues.ipynb",
        smoke={"invalid_sample": 24, "invalid_archs": ["cnn"], "timing_functions": 3,
               "negation_seeds": [0, 1, 2], "full_size_archs": [],
               "full_size_negation_seeds": [0, 1]},
        paper={
            "full_size_archs": ["all-cnn-c", "resnet-56", "mobilevitv2-0.5"],
            "negation_seeds": [0, 1, 2, 3, 4],
            "full_size_negation_seeds": [0, 1],
            "invalid_sample": 300,
            "invalid_archs": benchmark_archs,
            "timing_functions": 2,
        },
        outputs=("02_negation_distances", "02_fig5_negation", "02_invalid_share",
                 "02_timings"),
    ),
    Notebook(
        "03_umap_embedding.ipynb",
        smoke={"source": "shipped", "max_functions": 400, "resamples": 200,
               "show_inspector": True, "inspector_screenshot": False},
        paper={"source": "shipped", "max_functions": None, "resamples": 1000,
               "show_inspector": True, "inspector_screenshot": True},
        full={"source": "rebuild"},
        outputs=("03_distance_examples", "03_fig4_embeddings", "03_fim_default_neighbors",
                 "03_neighbour_predictiveness", "03_feature_comparisons"),
    ),
    Notebook(
        "04_benchmark_search.ipynb",
        smoke={"source": "shipped", "max_functions": 400, "trials": 3, "budget": 20,
               "umap_seeds": [0, 1], "stall_trials": 3, "tuning_trials": 2, "report_trials": 3,
               "ablation_trials": 3, "ablation_dims": [5], "ablation_ks": [5],
               "methods": ["knr", "svr", "random", "random-filter"],
               "default_candidates": [["both", "knr"], ["both (raw)", "knr"],
                                      ["both (raw)", "lgp-ucb"]],
               "batch_trials": 2, "batch_size": 4},
        paper={"source": "shipped", "max_functions": None, "trials": 100, "budget": 100,
               "umap_seeds": [0, 1, 2, 3, 4], "stall_trials": 20, "tuning_trials": 40,
               "report_trials": 100,
               "default_candidates": [
                   ["both", "knr"], ["both (raw)", "knr"], ["both (raw)", "knr-uniform"],
                   ["both (raw)", "knr-ucb(kappa=1)"],
                   ["both (raw)", "lgp-ucb(kappa=1,length=0.3)"],
                   ["both (raw)", "lgp-ucb(kappa=2,length=0.3)"],
                   ["both (raw)", "lgp-ucb(kappa=1,length=0.1)"],
                   ["outputs (raw)", "lgp-ucb(kappa=1,length=0.3)"],
                   ["both", "lgp-ucb(kappa=1,length=0.3)"]],
               "ablation_trials": 100, "ablation_dims": [5, 10], "ablation_ks": [1, 5, 8],
               "methods": _experiment_methods, "batch_trials": 100, "batch_size": 4},
        full={"source": "rebuild"},
        outputs=("04_fig6_search", "04_results", "04_scorecard", "04_ablations", "04_stall",
                 "04_stall_summary", "04_default_tuning", "04_default_heldout",
                 "04_default_results", "04_batch"),
    ),
    Notebook(
        "05_large_scale_search.ipynb",
        smoke={"source": "run", "tasks": ["digits-cnn"], "space": "3-node", "evaluations": 4,
               "features": 24, "top": 1, "compare_seeds": [0], "final_seeds": [0],
               "usage_task": "mnist1d-cnn", "transfer": {"digits-cnn": "mnist1d-cnn"},
               "transfer_seeds": [0], "coatnet_task": "digits-cnn", "coatnet_evaluations": 2},
        paper={"source": "shipped",
               "tasks": ["digits-cnn", "mnist1d-hard-resnet", "mnist1d-hard-vit"], "top": 3,
               "compare_seeds": [0, 1, 2], "final_seeds": [0, 1, 2], "usage_task": None,
               "transfer": {"digits-cnn": "mnist1d-resnet",
                            "mnist1d-hard-resnet": "mnist1d-hard-vit",
                            "mnist1d-hard-vit": "mnist1d-hard-resnet"},
               "transfer_seeds": [0, 1, 2], "coatnet_task": "mnist1d-hard-coatnet"},
        full={"source": "run", "tasks": ["digits-cnn", "mnist1d-hard-resnet", "mnist1d-hard-vit"],
              "space": "4-node", "evaluations": 50, "features": 2000,
              "coatnet_task": "mnist1d-hard-coatnet", "coatnet_evaluations": 50},
        outputs=("05_fig7_searches", "05_map", "05_discoveries", "05_verdicts", "05_table1",
                 "05_table1_verdicts", "05_table2", "05_table2_verdicts", "05_table3",
                 "05_table3_verdicts",
                 "05_fig8_functions", "05_novel_functions",
                 "05_fig9_usage", "05_usage_table", "05_claims", "05_default_confirmation"),
    ),
    Notebook(
        "06_your_model.ipynb",
        smoke={"fisher_examples": 32, "space": "3-node", "evaluations": 2, "features": 24,
               "baselines": ["relu(x)", "tanh(x)", "swish(x)"],
               "fisher_networks": ["vit_tiny", "text_transformer", "text_lstm"],
               "refusals": ["vit-as-built"]},
        paper={"fisher_networks": ["resnet18", "mobilenet_v3_small", "vit_tiny", "timm_resnet10t",
                                   "text_transformer", "text_lstm"],
               "refusals": ["vit-as-built", "timm-resnet10t-as-built"],
               "fisher_examples": 128, "space": "3-node", "evaluations": 20, "features": 500,
               "baselines": ["relu(x)", "elu(x)", "selu(x)", "sigmoid(x)", "softplus(x)",
                             "softsign(x)", "swish(x)", "tanh(x)"]},
        outputs=("06_sites", "06_coverage", "06_search"),
    ),
]


@dataclass
class NotebookRun:
    """What one notebook did: wall-clock seconds and the files it wrote into figures_dir."""

    notebook: str
    executed: Path
    seconds: float
    files: list[str]

    def as_json(self, root: Path) -> dict[str, Any]:
        """The run's ``manifest.json`` entry: ``executed`` relative to ``root`` (the output
        root), ``seconds`` rounded to 0.01, ``files`` as recorded (relative to figures_dir)."""
        return {"notebook": self.notebook, "executed": _display_path(self.executed, root),
                "seconds": round(self.seconds, 2), "files": self.files}


@dataclass
class Manifest:
    """What :func:`run_pipeline` did for one ``profile``: where the executed notebooks
    (``runs_dir``) and figures (``figures_dir``) went, each notebook's :class:`NotebookRun`,
    the total wall-clock ``seconds``, and ``path``, the ``manifest.json`` written."""

    profile: str
    figures_dir: Path
    runs_dir: Path
    runs: list[NotebookRun]
    seconds: float
    path: Path | None = None


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise PipelineError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def _display_path(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # different drives on Windows
        return str(path)


def output_paths(profile: str, output_root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(runs_dir, figures_dir)`` of a profile. The output root is ``output_root``, else
    ``$AQUASURF_OUTPUT_ROOT``, else the repository."""
    _check_profile(profile)
    root = Path(output_root or os.environ.get(ENV_OUTPUT_ROOT) or REPO_ROOT).resolve()
    runs_dir = root / "papermill_runs" / profile
    figures_dir = root / "figures" if profile == "paper" else runs_dir / "figures"
    return runs_dir, figures_dir


def select(registry: Sequence[Notebook], only: Iterable[str] | None) -> list[Notebook]:
    """The registry entries named by ``only`` (numbers like ``01``/``1``, stems or file names),
    in registry order; all of them when ``only`` is ``None`` or empty."""
    if not only:
        return list(registry)
    chosen: set[str] = set()
    for token in only:
        token = str(token).strip()
        matches = [nb for nb in registry
                   if token in (nb.filename, nb.stem)
                   or (token.isdigit() and int(token) == int(nb.number))]
        if not matches:
            known = ", ".join(nb.stem for nb in registry) or "(empty registry)"
            raise PipelineError(f"--only {token!r} matches no registered notebook; known: {known}")
        chosen.update(nb.filename for nb in matches)
    return [nb for nb in registry if nb.filename in chosen]


def registry_entry(notebook: str, registry: Sequence[Notebook] | None = None) -> Notebook:
    """The :data:`NOTEBOOKS` entry (or ``registry``'s) of ``notebook``: its file name, stem or
    number. Raises :class:`PipelineError` when none matches."""
    (entry,) = select(list(NOTEBOOKS if registry is None else registry), [notebook])
    return entry


def profile_values(notebook: str, profile: str, *, registry: Sequence[Notebook] | None = None,
                   output_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """What ``profile`` sets in ``notebook`` besides the values every profile shares: its
    registry parameters and ``figures_dir`` -- for the smoke profile the ``parameters`` cell's
    own (:data:`CELL_FIGURES_DIR`), for the others :func:`output_paths`'s absolute path (the
    paper profile's is the committed ``figures/``, as with ``make reproduce``). Raises
    :class:`PipelineError` for an unknown profile or notebook."""
    _check_profile(profile)
    entry = registry_entry(notebook, registry)
    figures_dir = (CELL_FIGURES_DIR if profile == CELL_PROFILE
                   else str(output_paths(profile, output_root)[1]))
    return {"figures_dir": figures_dir, **entry.parameters(profile)}


def injected_names(source: str) -> set[str]:
    """The names a cell assigns when it is papermill's injected parameters cell (its first line
    is :data:`PAPERMILL_COMMENT`), else the empty set. Parsed with ``ast``, never run."""
    lines = source.lstrip().splitlines()
    if not lines or lines[0].strip() != PAPERMILL_COMMENT:
        return set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {target.id for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def papermill_injected() -> set[str]:
    """The names papermill injected into the running kernel: those of the cell executed just
    before the calling one, when that is papermill's injected cell (papermill runs it right
    after the ``parameters`` cell). Empty outside IPython and in a JupyterLab session, where
    no such cell ran."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebooks' kernel
        return set()
    shell = get_ipython()
    if shell is None:
        return set()
    history = shell.history_manager.input_hist_raw  # [-1]: the cell running now
    return injected_names(history[-2]) if len(history) >= 2 else set()


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def apply_profile(namespace: MutableMapping[str, Any], notebook: str, *,
                  injected: Iterable[str] | None = None,
                  registry: Sequence[Notebook] | None = None,
                  output_root: str | os.PathLike | None = None,
                  log: Any = print) -> dict[str, Any]:
    """Give a notebook's variables the values of the profile it names (the module docstring).

    Called by the cell after each notebook's ``parameters`` cell as
    ``apply_profile(globals(), "<notebook file>")``. For each value of
    :func:`profile_values` of ``namespace["profile"]``, sets it in ``namespace`` unless

    * papermill injected that name (``injected``; default :func:`papermill_injected`): what
      ``papermill -p`` or ``make reproduce`` passes always wins, or
    * its value differs from the smoke profile's, the ``parameters`` cell's own: the user
      changed it in the cell, and keeps it.

    With the cell's own profile (smoke) nothing changes. Logs (``log``; ``None`` for quiet)
    one line naming what it set and what it kept, and nothing when it set nothing. Returns the
    values it set. Raises :class:`PipelineError` for an unknown profile or notebook and when
    ``namespace`` has no ``profile``.
    """
    if "profile" not in namespace:
        raise PipelineError(f"{notebook}: no `profile` assigned; the parameters cell must run "
                            "before apply_profile")
    profile = namespace["profile"]
    if not isinstance(profile, str):
        raise PipelineError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    target = profile_values(notebook, profile, registry=registry, output_root=output_root)
    if profile == CELL_PROFILE:
        return {}
    cell = profile_values(notebook, CELL_PROFILE, registry=registry)
    passed = papermill_injected() if injected is None else set(injected)
    changed: dict[str, Any] = {}
    edited: list[str] = []
    for name, value in target.items():
        if name in passed:
            continue
        if name in namespace and name in cell and namespace[name] != cell[name]:
            if namespace[name] != value:
                edited.append(name)
            continue
        if name not in namespace or namespace[name] != value:
            namespace[name] = changed[name] = value
    if log is not None and (changed or edited):
        parts = []
        if changed:
            parts.append(f"the {profile} profile's settings (aquasurf_core.pipeline.NOTEBOOKS): "
                         + ", ".join(f"{k}={_short(v)}" for k, v in changed.items()))
        if edited:
            parts.append("kept as changed in the parameters cell: "
                         + ", ".join(f"{k}={_short(namespace[k])}" for k in edited))
        log("; ".join(parts))
    return changed


def profile_note(profile: str) -> str:
    """What a notebook says first about its profile's scale: for the smoke profile, that its
    numbers and verdicts are toy-sized; nothing (``""``) for the others. Raises
    :class:`PipelineError` for an unknown profile."""
    _check_profile(profile)
    if profile != "smoke":
        return ""
    return ("smoke profile: toy-sized settings (aquasurf_core.pipeline.NOTEBOOKS), so every "
            "number and verdict below only shows that the code runs end to end; set "
            "profile = \"paper\" (or run `make reproduce`) for the paper's settings")


@contextlib.contextmanager
def kernel_environment(variables: Mapping[str, str] = KERNEL_ENVIRONMENT) -> Iterator[None]:
    """Set ``variables`` in this process's environment, which the kernels it starts inherit,
    and restore the previous values afterwards."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _parameters_cell(nb: Any) -> int:
    for index, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    return -1


def check_notebooks(notebooks: Sequence[Notebook], notebooks_dir: Path, profile: str) -> None:
    """Fail before running anything if a notebook is missing or its ``parameters`` cell does
    not declare a parameter the runner will pass."""
    import papermill

    missing = [nb.filename for nb in notebooks if not (notebooks_dir / nb.filename).is_file()]
    if missing:
        raise PipelineError(f"registered notebook(s) missing from {notebooks_dir}: "
                            f"{', '.join(missing)} (add the file or remove its registry entry)")
    for nb in notebooks:
        path = notebooks_dir / nb.filename
        declared = papermill.inspect_notebook(path)
        if not declared:
            raise PipelineError(
                f"{nb.filename} has no cell tagged 'parameters' (or it assigns nothing); it must "
                f"assign {', '.join(COMMON_PARAMETERS)} and its registry parameters")
        wanted = [*COMMON_PARAMETERS, *nb.parameters(profile)]
        undeclared = [name for name in wanted if name not in declared]
        if undeclared:
            raise PipelineError(f"{nb.filename}: its 'parameters' cell does not assign "
                                f"{', '.join(undeclared)} (passed by the {profile} profile)")


def _check_kernel(kernel_name: str) -> None:
    """The kernel must be this interpreter, so the notebooks import this installation."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as error:
        raise PipelineError(f"no Jupyter kernel {kernel_name!r}; install ipykernel in this "
                            f"environment ({sys.executable} -m pip install ipykernel)") from error
    exe = spec.argv[0]
    generic = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if exe not in generic and Path(exe).resolve() != Path(sys.executable).resolve():
        raise PipelineError(
            f"Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {exe}, not this "
            f"interpreter {sys.executable}; remove that kernelspec or run "
            f"`{sys.executable} -m ipykernel install --sys-prefix`")


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    if not directory.is_dir():
        return {}
    return {
        _display_path(p, directory): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in FIGURE_SUFFIXES
    }


def _failure(error: Any, nb: Notebook, source: Path, executed: Path) -> NotebookFailed:
    """Turn papermill's PapermillExecutionError into a message naming notebook and cell."""
    import nbformat

    # papermill inserts an 'injected-parameters' cell after the 'parameters' cell (or at the
    # top, or replaces an existing injected cell); map its cell index back to the source's.
    source_nb = nbformat.read(source, as_version=4)
    injected = next((i for i, c in enumerate(source_nb.cells)
                     if "injected-parameters" in c.get("metadata", {}).get("tags", [])), None)
    index: int | None = error.cell_index
    if injected is None:
        injected_at = _parameters_cell(source_nb) + 1
        if index == injected_at:
            index = None
        elif index > injected_at:
            index -= 1
    where = ("the injected parameters cell" if index is None
             else f"cell {index} (0-based, counting Markdown cells)")
    lines = (error.source or "").splitlines()
    # IPython tracebacks say "Cell In[4], line 3" for the failing line of the cell itself.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback or []))
    hits = re.findall(rf"Cell In\[{error.exec_count}\], line (\d+)", plain)
    line = int(hits[-1]) if hits else None
    if line is not None and 1 <= line <= len(lines):
        excerpt = f"  line {line}: {lines[line - 1].strip()}\n"
    else:
        shown = [ln for ln in lines if ln.strip()][:3]
        excerpt = "".join(f"  | {ln}\n" for ln in shown)
    message = (
        f"notebook {nb.filename} failed in {where}, In [{error.exec_count}] of the executed "
        f"copy:\n  {error.ename}: {error.evalue}\n{excerpt}"
        f"  full traceback in the executed copy: {executed}"
    )
    return NotebookFailed(message, notebook=nb.filename, cell_index=index,
                          exec_count=error.exec_count, ename=error.ename, evalue=error.evalue,
                          executed_copy=executed)


def _write_manifest(manifest: Manifest, registry: Sequence[Notebook]) -> Path:
    """Write ``manifest.json``; entries of registered notebooks not run this time (``--only``)
    are kept from the previous manifest, so it always describes the whole figures directory."""
    path = manifest.figures_dir / MANIFEST_NAME
    previous: dict[str, dict[str, Any]] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("profile") == manifest.profile:
                previous = {e["notebook"]: e for e in old.get("notebooks", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            previous = {}
    root = manifest.runs_dir.parent.parent  # <output root>/papermill_runs/<profile>
    previous.update({r.notebook: r.as_json(root) for r in manifest.runs})
    entries = [previous[nb.filename] for nb in registry if nb.filename in previous]
    # per notebook: "executed" is relative to the output root, "files" to the figures dir
    document = {
        "profile": manifest.profile,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "seconds_this_run": round(manifest.seconds, 2),
        "notebooks": entries,
        "shared": [name for name in SHARED_FILES if (manifest.figures_dir / name).is_file()],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def run_pipeline(
    profile: str,
    *,
    only: Iterable[str] | None = None,
    registry: Sequence[Notebook] | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    output_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = DEFAULT_SEED,
    kernel_name: str = KERNEL_NAME,
    progress: bool = True,
) -> Manifest:
    """Execute the selected notebooks of ``registry`` (default :data:`NOTEBOOKS`, files in
    ``notebooks_dir``, default ``<repo>/notebooks``) in order under ``profile``.

    Returns the :class:`Manifest` (also written as ``manifest.json`` in the figures dir).
    Raises :class:`PipelineError` (or :class:`NotebookFailed`) on the first problem; notebooks
    after a failing one are not run.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from tqdm.auto import tqdm

    _check_profile(profile)
    registry = list(NOTEBOOKS if registry is None else registry)
    if not registry:
        raise PipelineError("the notebook registry is empty")
    notebooks_dir = Path(notebooks_dir or NOTEBOOKS_DIR).resolve()
    selected = select(registry, only)
    check_notebooks(selected, notebooks_dir, profile)
    _check_kernel(kernel_name)

    runs_dir, figures_dir = output_paths(profile, output_root)
    cache = Path(cache_dir).resolve() if cache_dir else paths.cache_dir()
    for directory in (runs_dir, figures_dir, cache):
        directory.mkdir(parents=True, exist_ok=True)
    common = {"profile": profile, "figures_dir": str(figures_dir), "cache_dir": str(cache),
              "seed": int(seed)}

    runs: list[NotebookRun] = []
    start = time.perf_counter()
    bar = tqdm(selected, desc=f"notebooks ({profile})", unit="nb", disable=not progress,
               position=0, leave=True)
    for nb in bar:
        bar.set_postfix_str(nb.filename)
        source = notebooks_dir / nb.filename
        executed = runs_dir / nb.filename
        before = _snapshot(figures_dir)
        t0 = time.perf_counter()
        try:
            with kernel_environment():
                papermill.execute_notebook(
                    source, executed, parameters={**common, **nb.parameters(profile)},
                    kernel_name=kernel_name, cwd=str(notebooks_dir), progress_bar=progress,
                    log_output=False,
                )
        except PapermillExecutionError as error:
            bar.close()
            raise _failure(error, nb, source, executed) from None
        except Exception as error:  # kernel died, kernel did not start, unreadable notebook...
            bar.close()
            raise PipelineError(f"notebook {nb.filename} could not be executed: "
                                f"{type(error).__name__}: {error}") from error
        seconds = time.perf_counter() - t0
        after = _snapshot(figures_dir)
        files = sorted(name for name, stat in after.items() if before.get(name) != stat)
        stems = {Path(name).stem for name in files}
        absent = [stem for stem in nb.outputs if stem not in stems]
        if absent:
            bar.close()
            raise PipelineError(f"notebook {nb.filename} ran but did not write its declared "
                                f"output(s) {', '.join(absent)} into {figures_dir}")
        runs.append(NotebookRun(nb.filename, executed, seconds, files))
    bar.close()

    manifest = Manifest(profile, figures_dir, runs_dir, runs, time.perf_counter() - start)
    manifest.path = _write_manifest(manifest, registry)
    return manifest


def format_manifest(manifest: Manifest) -> str:
    """A human-readable summary: one line per notebook with its seconds and files."""
    lines = [f"Regenerated ({manifest.profile} profile) in {manifest.seconds:.1f} s",
             f"  executed notebooks: {manifest.runs_dir}",
             f"  figures and tables: {manifest.figures_dir}"]
    for run in manifest.runs:
        lines.append(f"  {run.notebook:<32} {run.seconds:8.1f} s  {len(run.files)} file(s)")
        lines += [f"      {name}" for name in run.files]
    if manifest.path is not None:
        lines.append(f"  manifest: {manifest.path}")
    return "\n".join(lines)
