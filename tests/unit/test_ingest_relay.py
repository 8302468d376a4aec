"""The outbox relay against a fake producer: marks only what was acknowledged, backs off, resends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ingest_cases import NOW, backends, clock, patrol, sampling, store
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stream.ingest import OutboxRecord, OutboxRelay, RawRow, submit_many


@dataclass
class FakeFuture:
    ok: bool
    exception: Exception | None = None
    is_done: bool = True

    def succeeded(self) -> bool:
        return self.ok


@dataclass
class FakeBroker:
    """A producer factory: raises while ``down``; its producers fail the sends listed in ``fail_ids``."""

    down: bool = False
    fail_ids: set[str] = field(default_factory=set)
    sent: list[tuple[str, bytes, bytes, dict[str, bytes]]] = field(default_factory=list)
    producers: int = 0

    def __call__(self) -> FakeBroker:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.producers += 1
        return self

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        h = dict(headers)
        if h["qw-record-id"].decode() in self.fail_ids:
            return FakeFuture(False, TimeoutError("not acknowledged"))
        self.sent.append((topic, key, value, h))
        return FakeFuture(True)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


@pytest.fixture(params=backends())
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with store(request.param, tmp_path) as factory:
        yield factory


def _accept(sessions: sessionmaker[Session], rows: list[tuple[str, dict[str, Any]]]) -> None:
    with sessions() as s:
        for kind, data in rows:
            submit_many(s, kind=kind, rows=[RawRow(1, data)], clock=clock)


def _relay(sessions: sessionmaker[Session], broker: FakeBroker, **kw: Any) -> OutboxRelay:
    return OutboxRelay(
        session_factory=sessions,
        producer_factory=broker,
        clock=clock,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        poll_interval_s=0.01,
        **kw,
    )


def test_relays_in_order_keyed_by_region_to_each_topic(sessions: sessionmaker[Session]) -> None:
    _accept(
        sessions,
        [("sampling", sampling(1)), ("patrol", patrol(1)), ("sampling", sampling(2, region="653024"))],
    )
    broker = FakeBroker()
    relay = _relay(sessions, broker, sampling_topic="t.sampling", patrol_topic="t.patrol")
    assert relay.pending() == 3
    assert relay.relay_once() == 3
    assert [(t, k, h["qw-record-id"], json.loads(v)["id"]) for t, k, v, h in broker.sent] == [
        ("t.sampling", b"653022", b"S-1", "S-1"),
        ("t.patrol", b"653001", b"P-1", "P-1"),
        ("t.sampling", b"653024", b"S-2", "S-2"),
    ]
    assert relay.pending() == 0 and relay.relay_once() == 0
    with sessions() as s:
        rows = s.execute(select(OutboxRecord)).scalars().all()
    assert all(r.relayed_at == NOW and r.attempts == 1 for r in rows)


def test_broker_down_keeps_records_and_counts_attempts(sessions: sessionmaker[Session]) -> None:
    _accept(sessions, [("sampling", sampling(1))])
    broker = FakeBroker(down=True)
    relay = _relay(sessions, broker)
    with pytest.raises(ConnectionError):
        relay.relay_once()
    with sessions() as s:
        row = s.execute(select(OutboxRecord)).scalar_one()
    assert row.relayed_at is None and row.attempts == 1 and "unreachable" in (row.last_error or "")
    broker.down = False
    assert relay.relay_once() == 1 and relay.pending() == 0


def test_only_acknowledged_records_are_marked(sessions: sessionmaker[Session]) -> None:
    _accept(sessions, [("sampling", sampling(n)) for n in (1, 2, 3)])
    broker = FakeBroker(fail_ids={"S-2"})
    relay = _relay(sessions, broker)
    assert relay.relay_once() == 2
    assert relay.pending() == 1
    broker.fail_ids.clear()
    assert relay.relay_once() == 1
    assert [h["qw-record-id"] for *_, h in broker.sent] == [b"S-1", b"S-3", b"S-2"]


def test_background_loop_backs_off_while_down_and_drains_when_back(sessions: sessionmaker[Session]) -> None:
    broker = FakeBroker(down=True)
    relay = _relay(sessions, broker)
    relay.start()
    try:
        _accept(sessions, [("sampling", sampling(n)) for n in range(1, 6)])
        relay.wake()
        deadline = time.monotonic() + 5
        while relay.stats.consecutive_failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.stats.consecutive_failures >= 3 and not broker.sent
        broker.down = False
        while relay.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        relay.stop()
    assert sorted(h["qw-record-id"] for *_, h in broker.sent) == [f"S-{n}".encode() for n in range(1, 6)]
    assert relay.stats.consecutive_failures == 0


class CrashAfterAck(OutboxRelay):
    """Dies between the broker's acknowledgement and the ``relayed_at`` commit."""

    def _mark(
        self, session: Session, acked: list[int], failed: list[int], error: BaseException | None
    ) -> None:
        raise SystemExit("killed after the broker acknowledged")


def test_crash_after_ack_resends_the_same_bytes(sessions: sessionmaker[Session]) -> None:
    _accept(sessions, [("sampling", sampling(1)), ("sampling", sampling(2))])
    broker = FakeBroker()
    crashing = CrashAfterAck(session_factory=sessions, producer_factory=broker, clock=clock)
    with pytest.raises(SystemExit):
        crashing.relay_once()
    assert _relay(sessions, broker).relay_once() == 2
    ids = [h["qw-record-id"] for *_, h in broker.sent]
    assert ids == [b"S-1", b"S-2", b"S-1", b"S-2"]
    assert broker.sent[0][2] == broker.sent[2][2]  # identical canonical JSON: dropping repeated ids is safe


def test_stop_ends_the_thread(sessions: sessionmaker[Session]) -> None:
    relay = _relay(sessions, FakeBroker())
    thread = relay.start()
    assert relay.start() is thread
    relay.stop(timeout=5)
    assert not thread.is_alive()
