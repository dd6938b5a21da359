"""The dask client a search runs on: the caller's, an existing cluster's, or a local one.

Every parallel part of the search stage (the benchmark trials, the large-scale search, the
comparison with the baselines) takes the same three options -- a ``client`` to reuse, a
``scheduler_address`` of an existing cluster, or ``workers`` local single-threaded processes --
and :func:`dask_client` turns them into one client, closing only what it opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CONNECT_TIMEOUT", "dask_client"]

#: seconds to wait for a scheduler before a search gives up with a message naming its address
CONNECT_TIMEOUT = 10.0


@contextmanager
def dask_client(client=None, scheduler_address: str | None = None,
                workers: int = 2) -> Iterator:
    """Yield ``client`` when given (left open); else a client of the cluster at
    ``scheduler_address``, else of a new ``LocalCluster`` of ``workers`` single-threaded
    processes -- both closed when the block ends, however it ends. Raises
    ``ConnectionError`` naming the address when no scheduler answers within
    :data:`CONNECT_TIMEOUT` seconds."""
    if client is not None:
        yield client
        return
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler_address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
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
