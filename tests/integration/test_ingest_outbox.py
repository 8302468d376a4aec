"""The outbox against the real embedded broker: broker down while inspectors submit, then back.

The broker keeps topics in memory only, so it is stopped *before* anything is submitted and started
again on the same port; every record accepted meanwhile must then arrive on its topic exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from schemas import SamplingResult, default_catalogue, uscc_check_char
from stream.broker import EmbeddedBroker, free_port
from stream.ingest import OutboxRelay, Principal, create_ingest_router, open_store, static_verifier

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer t"}


def _uscc(n: int) -> str:
    first = f"91653001MA7C{n:05d}"[:17]
    return first + uscc_check_char(first)


def _sampling(n: int) -> dict[str, Any]:
    failed = n % 5 == 0
    return {
        "id": f"S-{n}",
        "sampled_at": f"2026-03-0{2 + n % 5}T10:00:00+08:00",
        "region": ("653001", "653022", "653023", "653024")[n % 4],
        "industry": "textiles",
        "product": "scarf",
        "enterprise_id": _uscc(n % 9),
        "passed": not failed,
        "failed_items": ["formaldehyde"] if failed else [],
        "inspector_id": "insp-1",
    }


def _patrol(n: int) -> dict[str, Any]:
    return {
        "id": f"P-{n}",
        "patrolled_at": "2026-03-03T09:30:00+08:00",
        "region": ("653001", "653024")[n % 2],
        "industry": "food_processing",
        "enterprise_id": _uscc(n % 9),
        "inspector_id": "insp-2",
        "hazard": "expired raw materials",
        "severity": "general",
        "action": "rectified_on_site",
    }


def _consume(bootstrap: str, topics: list[str], expect: int, timeout: float = 30.0) -> list[Any]:
    """Every message of ``topics`` from the beginning: waits for ``expect``, then polls on for stragglers."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    try:
        parts = []
        for topic in topics:
            deadline = time.monotonic() + timeout
            found = consumer.partitions_for_topic(topic)
            while not found and time.monotonic() < deadline:
                time.sleep(0.2)
                found = consumer.partitions_for_topic(topic)
            parts += [TopicPartition(topic, p) for p in sorted(found or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                out.extend(batch)
            if len(out) >= expect:
                quiet_until = quiet_until or time.monotonic() + 2.0  # anything more would be a duplicate
                if time.monotonic() > quiet_until:
                    break
        return out
    finally:
        consumer.close()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    factory = open_store(f"sqlite:///{tmp_path / 'ingest.db'}")
    yield factory
    factory.kw["bind"].dispose()


def _relay(sessions: sessionmaker[Session], bootstrap: str, tag: str, **kw: Any) -> OutboxRelay:
    return OutboxRelay(
        session_factory=sessions,
        bootstrap_servers=bootstrap,
        sampling_topic=f"{tag}.sampling-results",
        patrol_topic=f"{tag}.patrol-reports",
        backoff_initial_s=0.1,
        backoff_max_s=1.0,
        poll_interval_s=0.1,
        producer_config={
            "max_block_ms": 2000,
            "bootstrap_timeout_ms": 1000,
            "request_timeout_ms": 5000,
            "reconnect_backoff_max_ms": 500,
        },
        **kw,
    )


def test_broker_down_during_submission_every_record_arrives_once(sessions: sessionmaker[Session]) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port)  # stopped: nothing may be lost while it is down
    tag = f"t{uuid.uuid4().hex[:8]}"
    relay = _relay(sessions, broker.bootstrap, tag)
    app = FastAPI()
    app.include_router(
        create_ingest_router(
            session_factory=sessions,
            verify=static_verifier({"t": Principal("insp", "inspector")}),
            on_accepted=relay.wake,
        )
    )
    relay.start()
    try:
        with TestClient(app) as client:
            for n in range(1, 41):
                assert (
                    client.post("/api/v1/sampling-results", json=_sampling(n), headers=AUTH).status_code
                    == 201
                )
            batch = [_patrol(n) for n in range(1, 21)]
            assert (
                client.post("/api/v1/patrol-reports:batch", json=batch, headers=AUTH).json()["accepted"] == 20
            )
            assert client.post("/api/v1/sampling-results", json=_sampling(1), headers=AUTH).status_code == 200
        deadline = time.monotonic() + 20
        while relay.stats.consecutive_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.stats.consecutive_failures >= 2, "the relay never tried while the broker was down"
        assert relay.pending() == 60
        broker.start()
        deadline = time.monotonic() + 60
        while relay.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert relay.pending() == 0
        relay.stop()
        messages = _consume(broker.bootstrap, [f"{tag}.sampling-results", f"{tag}.patrol-reports"], 60)
    finally:
        relay.stop()
        broker.stop()
    by_topic = Counter(m.topic for m in messages)
    ids = Counter(json.loads(m.value)["id"] for m in messages)
    assert by_topic == {f"{tag}.sampling-results": 40, f"{tag}.patrol-reports": 20}
    assert set(ids) == {f"S-{n}" for n in range(1, 41)} | {f"P-{n}" for n in range(1, 21)}
    assert set(ids.values()) == {1}
    for m in messages:
        record = json.loads(m.value)
        assert m.key.decode() == record["region"]
        assert dict(m.headers)["qw-record-id"].decode() == record["id"]


class _CrashAfterAck(OutboxRelay):
    def _mark(
        self, session: Session, acked: list[int], failed: list[int], error: BaseException | None
    ) -> None:
        raise SystemExit("killed between the acknowledgement and the relayed_at commit")


def test_crash_after_ack_is_covered_by_the_streams_dedup(sessions: sessionmaker[Session]) -> None:
    from detectors.engine import DetectionEngine, Outcome
    from stream.ingest import RawRow, submit_many

    tag = f"t{uuid.uuid4().hex[:8]}"
    with EmbeddedBroker() as broker:
        with sessions() as s:
            submit_many(
                s,
                kind="sampling",
                rows=[RawRow(n, _sampling(n)) for n in range(1, 11)],
                clock=lambda: datetime(2026, 3, 10, tzinfo=UTC),
            )
        with pytest.raises(SystemExit):
            crashing = _CrashAfterAck(
                session_factory=sessions,
                bootstrap_servers=broker.bootstrap,
                sampling_topic=f"{tag}.sampling-results",
                patrol_topic=f"{tag}.patrol-reports",
            )
            crashing.relay_once()
        crashing._drop_producer()
        assert _relay(sessions, broker.bootstrap, tag).drain(timeout=30)
        messages = _consume(broker.bootstrap, [f"{tag}.sampling-results"], 20)
    assert Counter(json.loads(m.value)["id"] for m in messages) == {f"S-{n}": 2 for n in range(1, 11)}
    engine = DetectionEngine(default_catalogue())
    ctx = {"catalogue": default_catalogue(), "now": datetime(2026, 3, 10, tzinfo=UTC)}
    outcomes = Counter()
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        outcome, _ = engine.process_sampling(SamplingResult.model_validate_json(m.value, context=ctx))
        outcomes[outcome] += 1
    assert outcomes == {Outcome.accepted: 10, Outcome.duplicate: 10}


def test_front_door_runs_the_relay(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from qualitywatch.server import create_app
    from stream.ingest import IngestSettings
    from stream.settings import StreamSettings

    tag = f"t{uuid.uuid4().hex[:8]}"
    app = create_app(
        settings=IngestSettings(
            database_url=f"sqlite:///{tmp_path / 'ingest.db'}", relay_poll_interval_s=0.1
        ),
        stream_settings=StreamSettings(bootstrap_servers=broker.bootstrap, topic_prefix=f"{tag}."),
        verify=static_verifier({"t": Principal("insp", "inspector")}),
    )
    with TestClient(app) as client:
        assert client.post("/api/v1/sampling-results", json=_sampling(7), headers=AUTH).status_code == 201
        assert client.post("/api/v1/patrol-reports", json=_patrol(7), headers=AUTH).status_code == 201
        messages = _consume(broker.bootstrap, [f"{tag}.sampling-results", f"{tag}.patrol-reports"], 2)
    assert sorted(json.loads(m.value)["id"] for m in messages) == ["P-7", "S-7"]
