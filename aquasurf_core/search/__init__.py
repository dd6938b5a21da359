"""Stage 4 -- searching for activation functions with a surrogate (paper Sections 5-6).

* :mod:`~aquasurf_core.search.surrogates` -- KNR, RFR, SVR, GPR (EI, UCB) and random scores.
* :mod:`~aquasurf_core.search.searcher` -- :class:`Searcher`, the ask/tell loop with a
  serialisable state.
* :mod:`~aquasurf_core.search.benchmark_search` -- repeated searches of the benchmarks on dask
  with a resumable trial ledger (notebook 04).
"""

from aquasurf_core.search.searcher import Searcher, SearchError
from aquasurf_core.search.surrogates import SURROGATES, USES_FILTER

__all__ = ["SURROGATES", "USES_FILTER", "SearchError", "Searcher"]
