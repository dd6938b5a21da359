"""AQuaSurF: activation-function search with a surrogate built from Fisher-information spectra
and activation outputs (Bingham & Miikkulainen, NeurIPS 2023), in PyTorch.

The package follows the paper's flow, one folder per stage; data flows one way, each stage
importing only the ones before it (``tests/test_layout.py`` checks this):

* :mod:`~aquasurf_core.space` -- operators, function names, schemas, evaluation and
  de-duplication of whole spaces, persisted spaces;
* :mod:`~aquasurf_core.models` -- architectures whose activation sites take a searched
  function, and their variance-preserving initialisation;
* :mod:`~aquasurf_core.features` -- output features and K-FAC Fisher-eigenvalue features;
* :mod:`~aquasurf_core.training` -- data, recipes and trainers;
* :mod:`~aquasurf_core.bench` -- benchmarks of trained functions (Act-Bench, Act-Bench-Mini);
* :mod:`~aquasurf_core.embedding` -- UMAP embeddings of the features;
* :mod:`~aquasurf_core.search` -- the ask/tell search with a surrogate;
* :mod:`~aquasurf_core.inspector` -- the interactive view of the embeddings (beside the
  search, which never loads it);
* :mod:`~aquasurf_core.figures` -- the paper's figures and tables, from the stages above.

Beside them: :mod:`~aquasurf_core.paths` (cache and data directories),
:mod:`~aquasurf_core.storage` (checksummed atomic writes), :mod:`~aquasurf_core.paper` (the
paper's reported numbers), :mod:`~aquasurf_core.export` (figure/table files),
:mod:`~aquasurf_core.pipeline` (the papermill pipeline) and :mod:`~aquasurf_core.cli`.

The most used names are available here directly (imported on first use, so that
``import aquasurf_core`` and ``aquasurf --help`` stay fast): ``parse``,
``ActivationFunction``, ``build_space``, ``output_features``, ``fim_features``,
``kfac_factors``, ``build_model``, ``make_searchable``, ``Benchmark``, ``load_benchmark``...
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "parse": "aquasurf_core.space.names",
    "InvalidFunctionName": "aquasurf_core.space.names",
    "ActivationFunction": "aquasurf_core.space.activation",
    "BASELINES": "aquasurf_core.space.baselines",
    "build_space": "aquasurf_core.space.store",
    "load_space": "aquasurf_core.space.store",
    "evaluate_functions": "aquasurf_core.space.evaluation",
    "output_features": "aquasurf_core.features.outputs",
    "fim_features": "aquasurf_core.features.fim",
    "fim_features_batch": "aquasurf_core.features.fim",
    "fim_distance": "aquasurf_core.features.fim",
    "kfac_factors": "aquasurf_core.features.fisher",
    "build_model": "aquasurf_core.models",
    "make_searchable": "aquasurf_core.models",
    "set_activation": "aquasurf_core.models",
    "activation_factory": "aquasurf_core.models",
    "Benchmark": "aquasurf_core.bench.table",
    "load_benchmark": "aquasurf_core.bench.table",
    "load_actbench": "aquasurf_core.bench.actbench",
    "save_figure": "aquasurf_core.export",
    "save_table": "aquasurf_core.export",
    "embed": "aquasurf_core.embedding.embeddings",
    "Inspector": "aquasurf_core.inspector.widget",
    "Searcher": "aquasurf_core.search.searcher",
}
_SUBMODULES = ("space", "models", "features", "training", "bench", "embedding", "search",
               "inspector", "figures", "paths", "storage", "paper", "export", "pipeline", "cli")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"aquasurf_core.{name}")
    else:
        raise AttributeError(f"module 'aquasurf_core' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
