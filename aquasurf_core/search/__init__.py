"""Stage 4 -- searching for activation functions with a surrogate (paper Sections 5-6).

* :mod:`~aquasurf_core.search.surrogates` -- KNR, RFR, SVR, GPR (EI, UCB) and random scores.
* :mod:`~aquasurf_core.search.searcher` -- :class:`Searcher`, the ask/tell loop with a
  serialisable state.
* :mod:`~aquasurf_core.search.benchmark_search` -- repeated searches of the benchmarks on dask
  with a resumable trial ledger (notebook 04).
* :mod:`~aquasurf_core.search.tasks` -- what a search needs to know about your problem.
* :mod:`~aquasurf_core.search.ledger` -- the fault-tolerant ledger of a large-scale search.
* :mod:`~aquasurf_core.search.engine` -- the large-scale search on dask (Section 6).
* :mod:`~aquasurf_core.search.comparisons` -- after a search: its discoveries against the
  baselines, trained longer (Table 1) or on another task (Table 2).
"""

from aquasurf_core.search.comparisons import compare_with_baselines
from aquasurf_core.search.engine import SearchConfig, run_search, search_status
from aquasurf_core.search.searcher import Searcher, SearchError
from aquasurf_core.search.surrogates import SURROGATES, USES_FILTER
from aquasurf_core.search.tasks import Task, TaskError, check_task, get_task, register_task

__all__ = ["SURROGATES", "USES_FILTER", "SearchConfig", "SearchError", "Searcher", "Task",
           "TaskError", "check_task", "compare_with_baselines", "get_task", "register_task",
           "run_search", "search_status"]
