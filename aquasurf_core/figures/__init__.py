"""The last stage: each figure and table of the paper profile, as a function of the data the
earlier stages produce. One module per notebook; every function returns a plotly Figure or a
pandas DataFrame, which the notebooks save with :mod:`aquasurf_core.export`.

* :mod:`~aquasurf_core.figures.benchmarks` -- notebook 00: Figures 1-2 and benchmark tables.
* :mod:`~aquasurf_core.figures.space` -- notebook 01: Figure 3 and the space tables.
* :mod:`~aquasurf_core.figures.fisher` -- notebook 02: Figure 5, invalid shares, timings.
* :mod:`~aquasurf_core.figures.embedding` -- notebook 03: Figure 4, neighbour predictiveness.
* :mod:`~aquasurf_core.figures.search` -- notebook 04: Figure 6, results, scorecard, ablations.
"""
