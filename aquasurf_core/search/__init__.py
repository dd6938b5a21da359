"""Stage 4 -- searching for activation functions with a surrogate (paper Sections 5-6).

* :mod:`~aquasurf_core.search.surrogates` -- the surrogate registry: KNR, RFR, SVR, GPR (EI,
  UCB), GP-UCB on distances and random scores.
* :mod:`~aquasurf_core.search.searcher` -- :class:`Searcher`, the ask/tell loop with a
  serialisable state.
* :mod:`~aquasurf_core.search.benchmark_search` -- repeated searches of the benchmarks on dask
  with a resumable trial ledger (notebook 04).
* :mod:`~aquasurf_core.search.tasks` -- what a search needs to know about your problem.
* :mod:`~aquasurf_core.search.ledger` -- the fault-tolerant ledger of a large-scale search.
* :mod:`~aquasurf_core.search.engine` -- the large-scale search on dask (Section 6).
* :mod:`~aquasurf_core.search.comparisons` -- after a search: its discoveries against the
  baselines, trained longer (Table 1) or on another task (Table 2).

The names below are imported when first used (PEP 562), so importing one module of this
stage (the surrogates, say) does not load dask, torch or the engine.
"""

from importlib import import_module

__all__ = ["SURROGATES", "USES_FILTER", "SearchConfig", "SearchError", "Searcher", "Task",
           "TaskError", "check_task", "compare_with_baselines", "get_task", "register_task",
           "run_search", "search_status"]

_WHERE = {"SearchConfig": "engine", "run_search": "engine", "search_status": "engine",
          "compare_with_baselines": "comparisons", "Searcher": "searcher",
          "SearchError": "searcher", "SURROGATES": "surrogates", "USES_FILTER": "surrogates",
          "Task": "tasks", "TaskError": "tasks", "check_task": "tasks", "get_task": "tasks",
          "register_task": "tasks"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
