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


def test_one_worker_per_gpu_each_pinned_to_its_own():
    import pytest

    from aquasurf_core.search.cluster import gpu_worker_envs

    assert gpu_worker_envs(0) == gpu_worker_envs(1) == []  # CPU or one GPU: nothing changes
    assert gpu_worker_envs(1, "3") == []
    assert gpu_worker_envs(3) == [{"CUDA_VISIBLE_DEVICES": d} for d in ("0", "1", "2")]
    # the driver's own selection is split, not renumbered (indices or UUIDs alike)
    assert gpu_worker_envs(2, "2,5") == [{"CUDA_VISIBLE_DEVICES": "2"},
                                         {"CUDA_VISIBLE_DEVICES": "5"}]
    assert gpu_worker_envs(2, " GPU-a1 , GPU-b2 ") == [{"CUDA_VISIBLE_DEVICES": "GPU-a1"},
                                                       {"CUDA_VISIBLE_DEVICES": "GPU-b2"}]
    with pytest.raises(ValueError, match="names 1 device"):
        gpu_worker_envs(2, "4")
    with pytest.raises(ValueError, match="device_count must be"):
        gpu_worker_envs(-1)


def _visible() -> str:
    import os

    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def test_a_pinned_local_cluster_starts_each_worker_with_its_environment():
    """The mechanics of the GPU path on any machine: each worker process sees only its own
    CUDA_VISIBLE_DEVICES (set before the process starts, so before CUDA could initialise)."""
    from aquasurf_core.search.cluster import local_cluster

    envs = [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    with local_cluster(envs=envs) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        seen = client.run(_visible)  # {worker address: its CUDA_VISIBLE_DEVICES}
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
        threads = {w["nthreads"] for w in client.scheduler_info()["workers"].values()}
    assert sorted(seen.values()) == ["0", "1"]
    assert names == {"gpu-0", "gpu-1"} and threads == {1}


def test_two_local_clusters_at_once_warn_of_no_port_in_use():
    import warnings

    from aquasurf_core.search.cluster import local_cluster

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = local_cluster(1)
        try:
            second = local_cluster(1)
            second.close()
        finally:
            first.close()
    assert not [w for w in caught if "already in use" in str(w.message)]
