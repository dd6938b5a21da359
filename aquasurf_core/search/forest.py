"""The ``"rfr"`` surrogate's random forest, computed without scikit-learn's per-call overhead.

:func:`forest_predict` returns exactly (bit for bit) what
``RandomForestRegressor(random_state=seed).fit(x, y).predict(candidates)`` returns with
scikit-learn's defaults (100 trees, bootstrap samples of ``n`` rows, every feature at every
split, trees grown to purity), but about 3x faster on the search's ~100 evaluated functions:
there, fitting the trees is cheap and most of scikit-learn's time goes to per-call work --
validating the inputs of every tree, the joblib loop, and above all seeding a fresh
``np.random.RandomState`` twice per tree (a new ``RandomState`` first draws OS entropy, a few
hundred microseconds each, before it is re-seeded).

It repeats the steps of ``BaseForest.fit`` (scikit-learn 1.3 to 1.9) in the same order:

1. the forest's ``RandomState(seed)`` draws one ``randint(2**31 - 1)`` per tree, in tree
   order -- the tree's seed (``_set_random_states``);
2. each tree's bootstrap sample is ``RandomState(tree_seed).randint(0, n, n)``, passed to the
   tree as integer sample weights (the row counts, ``np.bincount``), as scikit-learn does;
3. each tree is grown from ``RandomState(tree_seed)`` again (its splitter draws its own seed
   from it), on ``float32`` coordinates and ``float64`` targets, with the default settings
   (squared error, ``min_samples_split = 2``, ``min_samples_leaf = 1``, no depth limit,
   ``max_features = 1.0``, no pruning);
4. the prediction is the running sum of the trees' predictions on the ``float32``
   candidates, in tree order, from zero, divided by the number of trees (the same
   floating-point operations as ``RandomForestRegressor.predict``).

One ``RandomState`` is re-seeded (``seed(tree_seed)``) instead of built anew: a re-seeded
legacy ``RandomState`` is in the same state as a new one with that seed. The trees are grown
by scikit-learn's own Cython tree builder (``DepthFirstTreeBuilder`` with a
``BestSplitter`` and the ``MSE`` criterion, as ``DecisionTreeRegressor.fit`` builds them)
without the estimator's validation; where those classes' signatures differ from scikit-learn
1.4+ the public ``DecisionTreeRegressor.fit(..., check_input=False)`` grows them instead
(:data:`LOW_LEVEL` says which). No tree code is written here. The tests compare the two
against ``RandomForestRegressor`` for many seeds and data shapes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_TREES", "LOW_LEVEL", "forest_predict", "sklearn_forest_predict"]

N_TREES = 100  # RandomForestRegressor's default n_estimators
MAX_INT = np.iinfo(np.int32).max  # scikit-learn's bound for derived seeds


def _low_level_available() -> bool:
    from sklearn import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) >= (1, 4)  # BestSplitter takes monotonic_cst from 1.4 on


#: Whether the trees are grown by scikit-learn's tree builder directly (scikit-learn >= 1.4)
#: rather than through ``DecisionTreeRegressor.fit``.
LOW_LEVEL = _low_level_available()


def _grow_low_level(x32, y2, weights, state):
    """One tree as ``DecisionTreeRegressor()._fit`` grows it (defaults, no pruning)."""
    from sklearn.tree._criterion import MSE
    from sklearn.tree._splitter import BestSplitter
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree

    n, d = x32.shape
    # BestSplitter(criterion, max_features, min_samples_leaf, min_weight_leaf, random_state,
    # monotonic_cst); min_weight_leaf = min_weight_fraction_leaf (0) * total weight.
    splitter = BestSplitter(MSE(1, n), d, 1, 0.0, state, None)
    tree = Tree(d, np.ones(1, dtype=np.intp), 1)
    # DepthFirstTreeBuilder(splitter, min_samples_split, min_samples_leaf, min_weight_leaf,
    # max_depth (None: int32 max), min_impurity_decrease)
    DepthFirstTreeBuilder(splitter, 2, 1, 0.0, MAX_INT, 0.0).build(tree, x32, y2, weights, None)
    return tree


def _grow_public(x32, y2, weights, state):
    """One tree by the public ``DecisionTreeRegressor.fit`` without input checks."""
    from sklearn import config_context
    from sklearn.tree import DecisionTreeRegressor

    with config_context(skip_parameter_validation=True):
        model = DecisionTreeRegressor(max_features=1.0, random_state=state)
        return model.fit(x32, y2, sample_weight=weights, check_input=False).tree_


def forest_predict(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, seed: int, *,
                   n_trees: int = N_TREES, low_level: bool | None = None) -> np.ndarray:
    """``RandomForestRegressor(n_estimators=n_trees, random_state=seed).fit(x, y)
    .predict(candidates)`` (``float64 [m]``), bit for bit, from ``x`` (``[n, d]``, finite),
    ``y`` (``[n]``) and ``candidates`` (``[m, d]``); the steps are in the module docstring.
    ``low_level`` picks the tree builder (default :data:`LOW_LEVEL`). Raises ``ValueError``
    for non-finite ``x`` or ``candidates`` (scikit-learn's forest would route missing values
    differently) and for mismatched shapes."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    c32 = np.ascontiguousarray(candidates, dtype=np.float32)
    y2 = np.ascontiguousarray(np.reshape(y, (-1, 1)), dtype=np.float64)
    if x32.ndim != 2 or c32.ndim != 2 or c32.shape[1] != x32.shape[1] or len(y2) != len(x32):
        raise ValueError(f"forest_predict needs x [n, d], y [n], candidates [m, d]; got "
                         f"{np.shape(x)}, {np.shape(y)}, {np.shape(candidates)}")
    if len(x32) == 0:
        raise ValueError("forest_predict needs at least one evaluated point")
    if not (np.isfinite(x32).all() and np.isfinite(c32).all()):
        raise ValueError("forest_predict needs finite coordinates")
    grow = _grow_low_level if (LOW_LEVEL if low_level is None else low_level) else _grow_public
    n = len(x32)
    forest_state = np.random.RandomState(int(seed))
    tree_seeds = [forest_state.randint(MAX_INT) for _ in range(n_trees)]
    state = np.random.RandomState(0)
    total = np.zeros(len(c32), dtype=np.float64)
    for tree_seed in tree_seeds:
        state.seed(tree_seed)
        weights = np.bincount(state.randint(0, n, n), minlength=n).astype(np.float64)
        state.seed(tree_seed)
        total += grow(x32, y2, weights, state).predict(c32)[:, 0]
    total /= n_trees
    return total


def sklearn_forest_predict(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, seed: int, *,
                           n_trees: int = N_TREES) -> np.ndarray:
    """The reference :func:`forest_predict` reproduces: scikit-learn's own
    ``RandomForestRegressor`` (for the tests and ``benchmarks/search_speed.py``)."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=n_trees, random_state=int(seed))
    return model.fit(x, y).predict(candidates)
