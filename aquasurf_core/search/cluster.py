"""The dask client a search runs on: the caller's, an existing cluster's, or a local one.

Every parallel part of the search stage (the benchmark trials, the large-scale search, the
comparison with the baselines) takes the same three options -- a ``client`` to reuse, a
``scheduler_address`` of an existing cluster, or ``workers`` local single-threaded processes --
and :func:`dask_client` turns them into one client, closing only what it opened.

On a machine with several CUDA devices the local cluster is one single-threaded worker per
device instead, each pinned to its own with ``CUDA_VISIBLE_DEVICES`` (:func:`gpu_worker_envs`:
the devices the driver itself may see, so a driver started with ``CUDA_VISIBLE_DEVICES=2,3``
runs two workers, on 2 and on 3); each worker then sees one device, ``cuda:0``. With one device
or none nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CONNECT_TIMEOUT", "dask_client", "gpu_worker_envs", "local_cluster"]

#: seconds to wait for a scheduler before a search gives up with a message naming its address
CONNECT_TIMEOUT = 10.0


def gpu_worker_envs(device_count: int, visible: str | None = None) -> list[dict[str, str]]:
    """The environment of each local worker on a machine where the driver sees
    ``device_count`` CUDA devices (``torch.cuda.device_count()``) through ``visible`` (its own
    ``CUDA_VISIBLE_DEVICES``, None when unset): one ``{"CUDA_VISIBLE_DEVICES": id}`` per device
    when there are two or more -- ``id`` the device's entry of ``visible`` (an index or a UUID),
    or its index when ``visible`` is unset -- and ``[]`` otherwise (the CPU path: nothing
    pinned). Raises ``ValueError`` for a negative count, or a ``visible`` with fewer entries
    than devices."""
    if isinstance(device_count, bool) or not isinstance(device_count, int) or device_count < 0:
        raise ValueError(f"device_count must be an integer >= 0, got {device_count!r}")
    if device_count < 2:
        return []
    if visible is None or not visible.strip():
        ids = [str(i) for i in range(device_count)]
    else:
        ids = [part.strip() for part in visible.split(",") if part.strip()][:device_count]
        if len(ids) < device_count:
            raise ValueError(f"CUDA_VISIBLE_DEVICES={visible!r} names {len(ids)} device(s) but "
                             f"{device_count} are visible")
    return [{"CUDA_VISIBLE_DEVICES": device} for device in ids]


def _visible_gpus() -> tuple[int, str | None]:
    """``(CUDA devices the driver sees, its CUDA_VISIBLE_DEVICES)``; (0, ...) without torch's
    CUDA."""
    import os

    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return count, os.environ.get("CUDA_VISIBLE_DEVICES")


def local_cluster(workers: int = 2, envs: list[dict[str, str]] | None = None):
    """A local cluster of single-threaded worker processes: ``workers`` of them, or, with
    ``envs``, one per entry, each started with that environment (and named ``gpu-<id>`` when it
    pins ``CUDA_VISIBLE_DEVICES``)."""
    from dask.distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    # The dashboard off. The scheduler still serves its HTTP routes (health, metrics), so give
    # it a free loopback port: with dashboard_address=None it takes 8787 and warns "Port 8787
    # is already in use" beside any other cluster.
    if not envs:
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address="127.0.0.1:0",
                            scheduler_kwargs={"dashboard": False})
    specs = {}
    for i, env in enumerate(envs):
        name = f"gpu-{env['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in env else str(i)
        specs[name] = {"cls": Nanny, "options": {"nthreads": 1, "env": dict(env)}}
    return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {
        "dashboard_address": "127.0.0.1:0", "dashboard": False, "host": "127.0.0.1"}})


@contextmanager
def dask_client(client=None, scheduler_address: str | None = None,
                workers: int = 2) -> Iterator:
    """Yield ``client`` when given (left open); else a client of the cluster at
    ``scheduler_address``, else of a new local cluster of ``workers`` single-threaded
    processes (one per GPU instead when there are several: module docstring) -- both closed
    when the block ends, however it ends. Raises
    ``ConnectionError`` naming the address when no scheduler answers within
    :data:`CONNECT_TIMEOUT` seconds."""
    if client is not None:
        yield client
        return
    from dask.distributed import Client

    cluster = None
    if scheduler_address is None:
        cluster = local_cluster(workers, gpu_worker_envs(*_visible_gpus()))
    try:
        own = Client(scheduler_address or cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        if cluster is not None:
            cluster.close()
        raise ConnectionError(f"no dask scheduler answers at {scheduler_address or cluster!s} "
                              f"within {CONNECT_TIMEOUT:g} s ({type(err).__name__}: {err})"
                              ) from err
    try:
        yield own
    finally:
        own.close()
        if cluster is not None:
            cluster.close()
