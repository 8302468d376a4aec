"""Group commit for single-record submissions.

Each ``POST`` of one record would otherwise pay a thread hand-off and a transaction of its own.
:class:`GroupWriter` runs one writer thread: concurrent submissions queue up, and the thread takes
everything waiting (up to ``max_batch``) and accepts it through :func:`~stream.ingest.service.submit_many`
in one transaction per submitter, then resolves each caller's future with its own outcome. Under
load, batches form by themselves; a lone request is handled at once (nothing waits for a batch to
fill). The semantics are those of ``submit_one``: two concurrent submissions of one id in the same
batch give ``accepted`` and ``duplicate`` (or ``conflict``), never two records.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from schemas import Catalogue

from .models import RecordKind
from .service import Clock, RawRow, RowOutcome, submit_many

__all__ = ["GroupWriter"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    kind: RecordKind
    data: Any
    submitted_by: str | None
    scope_region: str | None
    future: asyncio.Future[RowOutcome]
    loop: asyncio.AbstractEventLoop


_Settlement = tuple[_Job, RowOutcome | None, BaseException | None]


def _settle(settlements: list[_Settlement]) -> None:
    """Runs on the event loop: hand each caller its outcome (or the error)."""
    for job, outcome, error in settlements:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(outcome)  # type: ignore[arg-type]


def _resolve_all(settlements: list[_Settlement]) -> None:
    """One wake-up per event loop for a whole batch, not one per record."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Settlement]] = {}
    for item in settlements:
        by_loop.setdefault(item[0].loop, []).append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the loop was closed: its callers are gone
            log.warning("ingest writer: %d outcomes for a closed event loop were dropped", len(items))


class GroupWriter:
    """One writer thread that accepts queued single records in shared transactions."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        catalogue: Catalogue,
        clock: Clock,
        max_batch: int = 500,
        on_accepted: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = session_factory
        self._catalogue = catalogue
        self._clock = clock
        self._max_batch = max_batch
        self._on_accepted = on_accepted
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(
        self, *, kind: RecordKind, data: Any, submitted_by: str | None, scope_region: str | None
    ) -> RowOutcome:
        """Queue one record and wait for its outcome."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        job = _Job(kind, data, submitted_by, scope_region, loop.create_future(), loop)
        self._queue.put(job)
        return await job.future

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qw-ingest-writer", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued and stop the thread."""
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._write(jobs)
            if stop:
                return

    def _write(self, jobs: list[_Job]) -> None:
        groups: dict[tuple[RecordKind, str | None, str | None], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.kind, job.submitted_by, job.scope_region), []).append(job)
        settlements: list[_Settlement] = []
        try:
            self._write_groups(groups, settlements)
        finally:
            _resolve_all(settlements)

    def _write_groups(
        self,
        groups: dict[tuple[RecordKind, str | None, str | None], list[_Job]],
        settlements: list[_Settlement],
    ) -> None:
        for (kind, submitted_by, scope), members in groups.items():
            try:
                with self._sessions() as session:
                    outcomes = submit_many(
                        session,
                        kind=kind,
                        rows=[RawRow(1, job.data) for job in members],
                        catalogue=self._catalogue,
                        clock=self._clock,
                        submitted_by=submitted_by,
                        scope_region=scope,
                    )
            except Exception as exc:  # the database failed: every caller of this group gets the error
                log.exception("ingest writer: a group of %d records failed", len(members))
                settlements.extend((job, None, exc) for job in members)
                continue
            if self._on_accepted is not None and any(o.status == "accepted" for o in outcomes):
                self._on_accepted()  # before anyone hears "accepted": the relay is already on its way
            settlements.extend((job, outcome, None) for job, outcome in zip(members, outcomes, strict=True))
