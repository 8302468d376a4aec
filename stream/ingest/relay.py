"""The outbox relay: accepted records, from the database to their Kafka topics.

The relay reads unrelayed outbox rows in acceptance order, produces each with kafka-python
(``acks=all``) keyed by its region to ``qw.sampling-results`` or ``qw.patrol-reports`` (the record
id travels in the ``qw-record-id`` header as well as in the JSON), and stamps ``relayed_at`` only
after the broker acknowledged it. While the broker is unreachable it retries with exponential
backoff; ingest keeps accepting meanwhile, because acceptance is a database commit.

The guarantee, honestly: **at least once on the topic, exactly once after the stream's dedup.**
Every accepted record is published (it stays in the outbox until acknowledged), and in the normal
case — including a broker that is down for a while and comes back — exactly once. Two windows can
publish a record twice: the process dies after the broker acknowledged a batch but before the
``relayed_at`` commit, or a send times out on our side although the broker stored it. The copy
carries the same record id and byte-identical canonical JSON, and the stream's first stage drops
repeated record ids, so no record is ever counted twice downstream. Transactions would close the
window on a real Kafka cluster, but the embedded broker has none; the design does not rely on them.

Run one relay per database (``FOR UPDATE SKIP LOCKED`` keeps two from sending the same rows on
PostgreSQL; SQLite has no row locks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .models import OutboxRecord, RecordKind

__all__ = ["DEFAULT_PRODUCER_CONFIG", "DEFAULT_TOPICS", "OutboxRelay", "RelayStats"]

log = logging.getLogger(__name__)

DEFAULT_TOPICS = {RecordKind.sampling: "qw.sampling-results", RecordKind.patrol: "qw.patrol-reports"}
#: kafka-python settings of the relay's producer; ``producer_config`` overrides any of them
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "retries": 5,
    "max_block_ms": 5000,
    "bootstrap_timeout_ms": 5000,
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 30_000,
    "reconnect_backoff_max_ms": 2000,
}
_IN_CHUNK = 500


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RelayStats:
    relayed: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None


class OutboxRelay:
    """Relays the outbox to Kafka; ``start()`` runs it on a background thread, ``stop()`` ends it."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        bootstrap_servers: str | None = None,
        sampling_topic: str = DEFAULT_TOPICS[RecordKind.sampling],
        patrol_topic: str = DEFAULT_TOPICS[RecordKind.patrol],
        producer_config: Mapping[str, Any] | None = None,
        producer_factory: Callable[[], Any] | None = None,
        batch_size: int = 1000,
        poll_interval_s: float = 0.5,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        flush_timeout_s: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if producer_factory is None and not bootstrap_servers:
            raise ValueError("bootstrap_servers: is required unless a producer_factory is given")
        self._sessions = session_factory
        self._topics = {RecordKind.sampling.value: sampling_topic, RecordKind.patrol.value: patrol_topic}
        #: what the relay's kafka-python producer is built with (unless ``producer_factory`` builds it)
        self.producer_config: Mapping[str, Any] = _producer_kwargs(
            bootstrap_servers or "", {**DEFAULT_PRODUCER_CONFIG, **(producer_config or {})}
        )
        self._factory = producer_factory or self._kafka_producer
        self._producer: Any = None
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.flush_timeout_s = flush_timeout_s
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = RelayStats()

    def _kafka_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(**self.producer_config)

    # -- one pass ---------------------------------------------------------------------------------
    def pending(self) -> int:
        """Accepted records not yet acknowledged by the broker."""
        with self._sessions() as session:
            stmt = select(func.count()).select_from(OutboxRecord).where(OutboxRecord.relayed_at.is_(None))
            return int(session.execute(stmt).scalar_one())

    def relay_once(self) -> int:
        """Send up to ``batch_size`` unrelayed records; how many the broker acknowledged.

        Raises the producer's error when nothing could be sent (broker unreachable); acknowledged
        records are marked even when others in the batch failed.
        """
        with self._sessions() as session:
            stmt = (
                select(
                    OutboxRecord.seq,
                    OutboxRecord.kind,
                    OutboxRecord.record_id,
                    OutboxRecord.region,
                    OutboxRecord.payload,
                )
                .where(OutboxRecord.relayed_at.is_(None))
                .order_by(OutboxRecord.seq)
                .limit(self.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(session.execute(stmt).all())
            if not rows:
                session.rollback()
                return 0
            acked, failed, error = self._send(rows)
            self._mark(session, acked, failed, error)
        self.stats.relayed += len(acked)
        if error is not None:
            self.stats.failures += 1
            self.stats.last_error = repr(error)
            if not acked:
                raise error
        return len(acked)

    def _send(self, rows: list[Any]) -> tuple[list[int], list[int], BaseException | None]:
        try:
            if self._producer is None:
                self._producer = self._factory()
            producer = self._producer
            futures = []
            for seq, kind, record_id, region, payload in rows:
                headers = [("qw-record-id", record_id.encode("utf-8")), ("qw-kind", kind.encode("ascii"))]
                fut = producer.send(
                    self._topics[kind],
                    key=region.encode("utf-8"),
                    value=payload.encode("utf-8"),
                    headers=headers,
                )
                futures.append((seq, fut))
            producer.flush(timeout=self.flush_timeout_s)
        except Exception as exc:  # kafka-python raises KafkaError, OSError or AssertionError subclasses here
            self._drop_producer()
            return [], [r[0] for r in rows], exc
        acked: list[int] = []
        failed: list[int] = []
        error: BaseException | None = None
        for seq, fut in futures:
            if fut.is_done and fut.succeeded():
                acked.append(seq)
            else:
                failed.append(seq)
                error = error or (
                    fut.exception if fut.is_done else TimeoutError("no acknowledgement in time")
                )
        if failed:
            self._drop_producer()
        return acked, failed, error

    def _mark(
        self, session: Session, acked: list[int], failed: list[int], error: BaseException | None
    ) -> None:
        """Stamp acknowledged rows as relayed and count an attempt on failed ones, in one commit."""
        now = self._clock()
        for start in range(0, len(acked), _IN_CHUNK):
            session.execute(
                update(OutboxRecord)
                .where(OutboxRecord.seq.in_(acked[start : start + _IN_CHUNK]))
                .values(relayed_at=now, attempts=OutboxRecord.attempts + 1, last_error=None)
            )
        message = repr(error)[:500] if error is not None else None
        for start in range(0, len(failed), _IN_CHUNK):
            session.execute(
                update(OutboxRecord)
                .where(OutboxRecord.seq.in_(failed[start : start + _IN_CHUNK]))
                .values(attempts=OutboxRecord.attempts + 1, last_error=message)
            )
        session.commit()

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as exc:  # closing a broken client must not stop the relay
                log.debug("closing the producer failed: %r", exc)

    # -- the loop ---------------------------------------------------------------------------------
    def wake(self) -> None:
        """Ask the loop to look at the outbox now (called after records are accepted)."""
        self._wake.set()

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` (or :meth:`stop`) is set; backs off exponentially while sends fail."""
        stop = stop or self._stop
        backoff = self.backoff_initial_s
        while not stop.is_set() and not self._stop.is_set():
            try:
                sent = self.relay_once()
            except Exception as exc:  # the broker is down or the database is busy: back off and retry
                self.stats.consecutive_failures += 1
                log.warning("outbox relay: %r; retrying in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            self.stats.consecutive_failures = 0
            backoff = self.backoff_initial_s
            if sent < self.batch_size:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()
        self._drop_producer()

    def start(self) -> threading.Thread:
        """Run :meth:`run` on a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="qw-outbox-relay", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def drain(self, timeout: float = 60.0) -> bool:
        """Relay in the calling thread until the outbox is empty; ``False`` if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        backoff = self.backoff_initial_s
        while time.monotonic() < deadline:
            try:
                if self.relay_once() == 0 and self.pending() == 0:
                    return True
                backoff = self.backoff_initial_s
            except Exception as exc:
                log.warning("outbox relay: %r; retrying in %.1f s", exc, backoff)
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, self.backoff_max_s)
        return False


def _producer_kwargs(bootstrap_servers: str, config: Mapping[str, Any]) -> dict[str, Any]:
    kw = {**config, "bootstrap_servers": bootstrap_servers}
    # a delivery must be allowed at least one full request (plus lingering) before it expires
    floor = int(kw.get("request_timeout_ms", 30_000)) + int(kw.get("linger_ms", 0)) + 1000
    kw["delivery_timeout_ms"] = max(int(kw.get("delivery_timeout_ms", 0)), floor)
    return kw
