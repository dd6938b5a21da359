"""The search stage's dask client: the caller's is reused and left open, a local one is
started and closed."""

from dask.distributed import Client, LocalCluster

from aquasurf_core.search.cluster import dask_client


def test_callers_client_is_left_open_and_a_local_one_is_closed():
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as mine:
        with dask_client(mine) as got:
            assert got is mine
        assert mine.status == "running"
    with dask_client(workers=1) as local:
        assert len(local.scheduler_info()["workers"]) == 1
        assert local.submit(sum, [1, 2]).result() == 3
    assert local.status == "closed"
