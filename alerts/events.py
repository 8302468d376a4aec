"""The in-process change feed behind the server-sent-events stream.

Service functions call :func:`emit`; the event is published only when the session commits, so a
listener never sees a change that was rolled back. Publishing is thread-safe (the consumer runs in
a thread, listeners in the server's event loop).

Each event names the counties that may read it (:func:`readable_by`): an alert's county, or the
counties whose alerts an incident holds; ``None`` (a prefecture-wide record) is readable by all.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from .db import on_commit

__all__ = ["Event", "EventBus", "emit", "of_county"]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str  # alert.created, alert.updated, incident.updated, ...
    counties: frozenset[str] | None  # the counties whose readers may see it; None: every reader
    data: dict[str, Any] = field(default_factory=dict)

    def readable_by(self, county: str | None) -> bool:
        """May a reader scoped to ``county`` (``None``: the whole prefecture) see this event?"""
        return county is None or self.counties is None or county in self.counties


def of_county(region: str | None) -> frozenset[str] | None:
    """The readers of a record of one county (``None``: a prefecture-wide record, read by all)."""
    return None if region is None else frozenset({region})


class EventBus:
    """Fan-out of committed changes to any number of asyncio subscribers."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = []
        self._ids = itertools.count(1)
        self._queue_size = queue_size

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    def publish(self, type_: str, counties: Iterable[str] | None, data: dict[str, Any]) -> Event:
        readers = None if counties is None else frozenset(counties)
        event = Event(id=next(self._ids), type=type_, counties=readers, data=data)
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # loop closed: the listener is gone
                self.unsubscribe(queue)
        return event


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    if queue.full():  # a slow listener loses the oldest change, never blocks the pipeline
        queue.get_nowait()
    queue.put_nowait(event)


def emit(
    session: Session,
    type_: str,
    *,
    counties: Iterable[str] | None,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
) -> None:
    """Publish ``type_`` to the session's bus (``session.info['bus']``) once the session commits,
    for the readers of ``counties`` (see :func:`of_county`; ``None``: every reader).

    ``data`` may be a callable, evaluated after the commit (when generated ids are known).
    """
    bus: EventBus | None = session.info.get("bus")
    if bus is not None:
        readers = None if counties is None else frozenset(counties)  # decided now, before the commit

        def publish() -> None:
            bus.publish(type_, readers, data() if callable(data) else data)

        on_commit(session, publish)
