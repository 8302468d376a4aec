"""The warnings consumer against the real embedded broker: offsets after the database commit, and
redelivering the whole topic changes nothing in the database and sends nothing twice."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select

from alerts.alert.models import Alert, AlertDecision, ReceivedWarning
from alerts.consumer import make_consumer, run_consumer
from alerts.notification.models import Notification, NotificationAttempt
from alerts.runtime import Runtime
from stream.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


def _consume(runtime: Runtime, group: str, expected: int, timeout: float = 60) -> int:
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    consumer = make_consumer(runtime, group_id=group)
    try:
        return run_consumer(runtime=runtime, stop=stop, consumer=consumer, until=lambda n: n >= expected)
    finally:
        timer.cancel()
        committed = {tp.partition: consumer.committed(tp) for tp in consumer.assignment()}
        consumer.close()
        runtime.last_committed = committed  # type: ignore[attr-defined]


def _state(runtime: Runtime) -> dict[str, Any]:
    with runtime.session() as s:
        alerts = [
            {c.key: getattr(a, c.key) for c in Alert.__table__.columns}
            for a in s.scalars(select(Alert).order_by(Alert.id))
        ]
        return {
            "alerts": alerts,
            "received": s.scalar(select(func.count()).select_from(ReceivedWarning)),
            "decisions": s.scalar(select(func.count()).select_from(AlertDecision)),
            "notifications": [
                (n.key, n.status, n.attempts)
                for n in s.scalars(select(Notification).order_by(Notification.id))
            ],
            "attempts": s.scalar(select(func.count()).select_from(NotificationAttempt)),
        }


def test_redelivering_the_whole_topic_changes_nothing(broker, routed, make_warning, sink, settings):
    tag = uuid.uuid4().hex[:8]
    routed.settings = settings.model_copy(
        update={
            "bootstrap_servers": broker.bootstrap,
            "topic_prefix": f"t{tag}.",
            "session_timeout_ms": 6000,
            "fetch_max_wait_ms": 100,
        }
    )
    topic = routed.settings.topic
    warnings = []
    for region in ("653001", "653022", "653023", "653024"):
        for week, level in enumerate(("yellow", "orange", "orange", "red")):
            warnings.append(make_warning(region=region, level=level, week=week))
        warnings.append(make_warning(region=region, status="resolved", week=5))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for w in warnings:
        producer.send(topic, key=w.fingerprint.encode(), value=w.model_dump_json().encode())
    producer.send(topic, key=b"bad", value=b'{"id": "broken", "level": "crimson"}')
    producer.flush()
    producer.close()
    total = len(warnings) + 1

    assert _consume(routed, f"g1{tag}", total) == total
    routed.deliver()
    first = _state(routed)
    sent = len(sink.requests)
    assert first["received"] == len(warnings) and len(first["alerts"]) == 4
    assert all(
        a["state"] == "resolved" and a["count"] == 5 and a["max_level"] == "red" for a in first["alerts"]
    )
    assert sent == 4 * 4  # per county: firing, raised to orange, raised to red, resolved
    # offsets were committed (after the database commit) up to the end of every partition
    assert sum(o or 0 for o in routed.last_committed.values()) == total  # type: ignore[attr-defined]

    # a new group reads the whole topic again: nothing changes, nothing is sent twice
    assert _consume(routed, f"g2{tag}", total) == total
    routed.deliver()
    assert _state(routed) == first
    assert len(sink.requests) == sent


def test_a_warning_the_store_cannot_hold_is_skipped_not_fatal_to_its_batch(routed, make_warning):
    """Too long an identifier or a NUL in the text would fail the whole batch on PostgreSQL."""
    from collections import namedtuple

    from alerts.consumer import apply_batch

    Record = namedtuple("Record", "topic partition offset value")
    good = make_warning(region="653022", level="red")
    bad = [
        make_warning(region="653023").model_copy(update={"fingerprint": "f" * 65}),
        make_warning(region="653024").model_copy(update={"summary": "lead\x00"}),
        make_warning(region="6" * 17),
    ]
    records = [Record("qw.warnings", 0, i, w.model_dump_json().encode()) for i, w in enumerate([*bad, good])]
    result = apply_batch(routed, records)
    assert result.rejected == 3
    assert [(o.warning_id, o.change) for o in result.outcomes] == [(good.id, "new")]
    with routed.session() as s:
        assert s.scalars(select(Alert.region)).all() == ["653022"]


def test_a_detector_s_warning_off_the_topic_is_stored_whatever_its_scope_names(routed, make_warning):
    """POST /api/warnings refuses an industry or county the catalogue does not know; the detectors'
    own warnings, read off the topic, are never refused for it."""
    from collections import namedtuple

    from alerts.consumer import apply_batch

    Record = namedtuple("Record", "topic partition offset value")
    w = make_warning(kind="industry", region=None, industry="food")
    result = apply_batch(routed, [Record("qw.warnings", 0, 0, w.model_dump_json().encode())])
    assert result.rejected == 0 and [(o.warning_id, o.change) for o in result.outcomes] == [(w.id, "new")]
    with routed.session() as s:
        assert s.scalars(select(Alert.industry)).all() == ["food"]
