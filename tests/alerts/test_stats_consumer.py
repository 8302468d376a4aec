"""The cell-weeks consumer: the stream's weekly (county, industry) figures into ``cell_stats``.

Decoding is checked on its own; the consumer itself runs against the real embedded broker with the
topic written the way the stream writes it (every cell-week to every partition): the figures are
stored once, offsets are committed after the database commit, bad messages are skipped, and
reading the whole topic again changes nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cell_weeks import cell_week
from kafka import KafkaProducer
from sqlalchemy import select

from alerts.auth.models import Role
from alerts.auth.service import Principal
from alerts.stats.consumer import decode_cell_week, make_stats_consumer, run_stats_consumer
from alerts.stats.models import CellStat
from alerts.stats.service import grid
from detectors.base import CellWeek
from schemas import default_catalogue
from stream.broker import EmbeddedBroker
from stream.codec import encode_cell_week

ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2021, 11, 1, tzinfo=ZONE)


def _cell(region: str, industry: str, week: int, tested: int, failed: int) -> CellWeek:
    return cell_week(MONDAY, region, industry, week, tested, failed)


def test_decodes_the_topic_json_of_the_stream() -> None:
    cell = _cell("653022", "textiles", 0, 40, 3)
    got = decode_cell_week(encode_cell_week(cell))
    assert (got.region, got.industry, got.tested, got.failed) == ("653022", "textiles", 40, 3)
    assert got.week_start == cell.week_start and got.week_end == cell.week_end
    assert got.week_start.utcoffset() == timedelta(hours=8)
    assert got.item_failures == {"formaldehyde": 3}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff\xfe", "value"),
        (b"[1, 2]", "value"),
        (b'{"industry": "textiles"}', "region"),
        (
            b'{"region": "653022", "industry": "textiles", "week_start": "2021-11-01T00:00:00", '
            b'"week_end": "2021-11-08T00:00:00+08:00", "tested": 1, "failed": 0}',
            "week_start",
        ),
        (
            b'{"region": "653022", "industry": "textiles", "week_start": "2021-11-01T00:00:00+08:00", '
            b'"week_end": "2021-11-08T00:00:00+08:00", "tested": -1, "failed": 0}',
            "tested",
        ),
        (
            b'{"region": "653022", "industry": "textiles", "week_start": "2021-11-01T00:00:00+08:00", '
            b'"week_end": "2021-11-08T00:00:00+08:00", "tested": 2, "failed": 1, "item_failures": 7}',
            "item_failures",
        ),
    ],
)
def test_refuses_what_is_not_a_cell_week_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        decode_cell_week(raw)


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


def _consume(runtime: Any, group: str, expected: int, timeout: float = 60) -> dict[int, int | None]:
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    consumer = make_stats_consumer(runtime, group_id=group)
    try:
        seen = run_stats_consumer(
            runtime=runtime, stop=stop, consumer=consumer, until=lambda n: n >= expected
        )
        assert seen == expected
        return {tp.partition: consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        timer.cancel()
        consumer.close()


def _rows(runtime: Any) -> list[tuple[Any, ...]]:
    with runtime.session() as s:
        return [
            (
                r.region,
                r.industry,
                r.week_start,
                r.week_end,
                r.tested,
                r.failed,
                r.item_failures,
                r.updated_at,
            )
            for r in s.scalars(
                select(CellStat).order_by(CellStat.region, CellStat.industry, CellStat.week_start)
            )
        ]


@pytest.mark.integration
def test_stores_cell_weeks_from_the_broker_once_and_redelivery_changes_nothing(broker, runtime, settings):
    tag = uuid.uuid4().hex[:8]
    runtime.settings = settings.model_copy(
        update={
            "bootstrap_servers": broker.bootstrap,
            "topic_prefix": f"t{tag}.",
            "session_timeout_ms": 6000,
            "fetch_max_wait_ms": 100,
        }
    )
    topic = runtime.settings.cell_weeks
    cells = [
        _cell(region, industry, week, 30 + week, (week + n) % 4)
        for n, region in enumerate(("653001", "653022", "653023", "653024"))
        for industry in ("textiles", "food_processing")
        for week in range(3)
    ]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    partitions = sorted(producer.partitions_for(topic))
    sent = 0
    for cell in cells:  # as the stream does: every cell-week to every partition
        for p in partitions:
            producer.send(topic, key=cell.industry.encode(), value=encode_cell_week(cell), partition=p)
            sent += 1
    producer.send(topic, key=b"bad", value=b"not json", partition=0)
    producer.send(
        topic, key=b"bad", value=encode_cell_week(_cell("999999", "textiles", 0, 5, 1)), partition=1
    )
    producer.flush()
    producer.close()
    total = sent + 2

    committed = _consume(runtime, f"g1{tag}", total)
    first = _rows(runtime)
    assert len(first) == len(cells)  # one row per (county, industry, week); the copies and bad ones not
    by_key = {(r[0], r[1], r[2]): r for r in first}
    for cell in cells:
        row = by_key[(cell.region, cell.industry, cell.week_start)]
        assert (row[4], row[5]) == (cell.tested, cell.failed)
        assert row[6] == ({"formaldehyde": cell.failed} if cell.failed else {})
    assert sum(o or 0 for o in committed.values()) == total  # offsets committed to the end

    # a new group reads the whole topic again: the rows are unchanged
    _consume(runtime, f"g2{tag}", total)
    assert _rows(runtime) == first

    # and the dashboard grid now has pass rates against the policy targets
    with runtime.session() as s:
        g = grid(
            s, catalogue=default_catalogue(), principal=Principal(name="a", role=Role.admin, county=None)
        )
    akto = next(c for c in g["cells"] if c["county"] == "653022" and c["industry"] == "textiles")
    expected = [c for c in cells if (c.region, c.industry) == ("653022", "textiles")]
    tested = sum(c.tested for c in expected)
    assert akto["tested"] == tested
    assert akto["pass_rate"] == pytest.approx((tested - sum(c.failed for c in expected)) / tested)
    assert akto["target"] == default_catalogue().target_for_industry("textiles")
