"""The local dask clusters the notebooks start take no fixed port.

With ``dashboard_address=None`` dask's scheduler still starts its HTTP server (health and
metrics routes), on the default port 8787, so a second cluster on the machine (another
notebook, a test, a long job) printed ``UserWarning: Port 8787 is already in use``. The
notebooks pass a free loopback port instead, with the dashboard itself off. This test takes the
options of every ``LocalCluster(...)`` call of the notebooks, starts two such clusters at once
(one in-process worker each) and checks that no port warning is emitted.
"""

from __future__ import annotations

import ast
import json
import warnings

import pytest

from aquasurf_core.pipeline import NOTEBOOKS_DIR

#: options of a call that vary with the notebook's parameters; the test sets its own
SIZED = {"n_workers", "threads_per_worker"}


def cluster_calls() -> list[tuple[str, dict]]:
    """``(notebook, literal keyword options)`` of every ``LocalCluster(...)`` call."""
    calls = []
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or "LocalCluster(" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "LocalCluster":
                    options = {k.arg: ast.literal_eval(k.value) for k in node.keywords
                               if k.arg not in SIZED}
                    calls.append((path.name, options))
    return calls


CALLS = cluster_calls()


def test_the_search_notebooks_start_local_clusters():
    assert {"04_benchmark_search.ipynb", "05_large_scale_search.ipynb"} <= {n for n, _ in CALLS}


@pytest.mark.parametrize("notebook,options", CALLS, ids=[n for n, _ in CALLS])
def test_two_local_clusters_at_once_warn_of_no_port_in_use(notebook, options):
    from dask.distributed import LocalCluster

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, **options) as a, \
                LocalCluster(n_workers=1, threads_per_worker=1, processes=False, **options) as b:
            bound = {cluster.scheduler.http_server.address for cluster in (a, b)}
    in_use = [str(w.message) for w in caught if "already in use" in str(w.message)]
    assert in_use == [], f"{notebook}: {in_use}"
    assert bound == {"127.0.0.1"}, f"{notebook}: the HTTP server listens on {bound}"
    assert options.get("scheduler_kwargs", {}).get("dashboard") is False, (
        f"{notebook}: the dashboard is not switched off (scheduler_kwargs={{'dashboard': False}})")
