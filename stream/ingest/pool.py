"""Preparing large inputs on worker processes: cell conversion, validation, canonical JSON and hash.

Validation is pure CPU work in Python, so one process tops out at one core. A :class:`PreparePool`
sends chunks of an input (picklable :class:`~stream.ingest.service.RowChunk` slices: spreadsheet cells
or JSON rows) to worker processes, each of which holds the catalogue once, and yields the prepared
chunks back **in input order**; the caller stores them (one transaction per chunk) while the workers
prepare the next ones. At most ``2 × workers`` chunks are in flight, so memory stays bounded.

Workers are started with ``spawn`` (safe next to the threads of a server), on first use, and kept
(each ends with the process that started it):
one pool per catalogue and size for the life of the process (:func:`shared_pool`), closed at exit
or by :func:`close_pools`. Starting them costs about a second, paid by the first large input. As with
any spawned worker, a script that calls this must guard its entry point with
``if __name__ == "__main__":``. Should the workers die (killed, or a script without that guard), the
chunks are prepared in this process instead, with a warning: slower, same outcomes.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from schemas import Catalogue

from .models import RecordKind
from .service import Clock, Label, Prepared, RowChunk, RowOutcome, metric_labels, prepare_rows

__all__ = ["PreparePool", "close_pools", "prepare_chunk", "shared_pool"]

Result = tuple[list[Prepared | RowOutcome], list[Label]]

log = logging.getLogger(__name__)

_catalogue: Catalogue | None = None  # a worker's catalogue, set once by _init_worker


def _init_worker(catalogue: Catalogue, parent: int) -> None:
    global _catalogue
    _catalogue = catalogue
    threading.Thread(target=_exit_with, args=(parent,), name="qw-parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """A worker ends within a second of its parent, however the parent ended (even ``SIGKILL``)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _prepare(chunk: RowChunk, kind: RecordKind, now: datetime, scope_region: str | None) -> Result:
    """Runs on a worker: one chunk's prepared rows and the labels its metrics need."""
    assert _catalogue is not None, "the worker was started without a catalogue"
    return prepare_chunk(chunk, _catalogue, kind=kind, now=now, scope_region=scope_region)


def prepare_chunk(
    chunk: RowChunk, catalogue: Catalogue, *, kind: RecordKind, now: datetime, scope_region: str | None
) -> Result:
    """One chunk's prepared rows and the labels its metrics need (what a worker computes)."""
    rows = chunk.rows(catalogue)
    return (
        prepare_rows(rows, kind=kind, catalogue=catalogue, now=now, scope_region=scope_region),
        metric_labels(rows, catalogue),
    )


class PreparePool:
    """Worker processes that prepare chunks for one catalogue."""

    def __init__(self, catalogue: Catalogue, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be at least 1, got {workers}")
        self.workers = workers
        self.broken = False
        self._catalogue = catalogue
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(catalogue, os.getpid()),
        )

    def prepare(
        self,
        chunks: Iterable[RowChunk],
        *,
        kind: RecordKind,
        clock: Clock,
        scope_region: str | None,
    ) -> Iterator[tuple[list[Prepared | RowOutcome], list[Label], datetime]]:
        """Prepared chunks in input order, each with the clock reading it was validated against."""
        pending: deque[tuple[Future[Result] | None, RowChunk, datetime]] = deque()
        window = 2 * self.workers

        def result(item: tuple[Future[Result] | None, RowChunk, datetime]) -> Result:
            future, chunk, now = item
            if future is not None:
                try:
                    return future.result()
                except BrokenProcessPool:
                    if not self.broken:
                        log.warning("ingest: the validation workers died; preparing in this process")
                    self.broken = True
            return prepare_chunk(chunk, self._catalogue, kind=kind, now=now, scope_region=scope_region)

        try:
            for chunk in chunks:
                now = clock()
                future = None
                if not self.broken:
                    try:
                        future = self._executor.submit(_prepare, chunk, kind, now, scope_region)
                    except BrokenProcessPool:
                        self.broken = True
                pending.append((future, chunk, now))
                if len(pending) >= window:
                    item = pending.popleft()
                    yield (*result(item), item[2])
            while pending:
                item = pending.popleft()
                yield (*result(item), item[2])
        finally:
            for future, _, _ in pending:
                if future is not None:
                    future.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


_POOLS: dict[tuple[int, int], tuple[Catalogue, PreparePool]] = {}
_POOLS_LOCK = threading.Lock()
_MAX_POOLS = 4


def shared_pool(catalogue: Catalogue, workers: int) -> PreparePool:
    """The process-wide pool for ``catalogue`` with ``workers`` processes (created on first use)."""
    key = (id(catalogue), workers)
    with _POOLS_LOCK:
        found = _POOLS.pop(key, None)
        if found is not None and found[0] is catalogue and not found[1].broken:
            _POOLS[key] = found
            return found[1]
        if found is not None:
            found[1].close()
        while len(_POOLS) >= _MAX_POOLS:
            _, (_, old) = _POOLS.popitem()
            old.close()
        pool = PreparePool(catalogue, workers)
        _POOLS[key] = (catalogue, pool)  # the catalogue is kept so its id is not reused
        return pool


def close_pools() -> None:
    """Stop every shared pool's workers (at exit, or in tests)."""
    with _POOLS_LOCK:
        pools = [pool for _, pool in _POOLS.values()]
        _POOLS.clear()
    for pool in pools:
        pool.close()


atexit.register(close_pools)
