"""Checkpoints on PostgreSQL (``QW_TEST_DATABASE_URL``): the store itself, and a restart restoring from it.

Each test works in a scratch schema of the test database, so other suites using it do not collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from conftest import EPOCH, StreamData

from stream.checkpoint import Checkpoint, CheckpointStore
from stream.pipeline import DetectionPipeline
from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import assert_parity, collect, reference_run, wait_done

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("QW_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="QW_TEST_DATABASE_URL does not name a PostgreSQL database",
    ),
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The test database seen through a fresh schema (dropped afterwards)."""
    url = os.environ["QW_TEST_DATABASE_URL"]
    schema = f"stream_cp_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_store_on_postgresql_keeps_the_furthest_checkpoint_per_group(pg_url: str) -> None:
    store = CheckpointStore(pg_url, "g1")
    other = CheckpointStore(pg_url, "g2")
    try:
        assert store.engine.dialect.name == "postgresql"
        assert store.load("t.sampling-results", 0) is None
        first = [Checkpoint("t.sampling-results", 0, 10, b"s10"), Checkpoint("t.cell-weeks", 1, 3, b"c3")]
        assert store.save(first) == 2
        assert store.save([Checkpoint("t.sampling-results", 0, 25, b"s25")]) == 1
        # a late write from a worker that lost the partition never moves it backwards
        assert store.save([Checkpoint("t.sampling-results", 0, 20, b"zombie")]) == 0
        assert store.load("t.sampling-results", 0) == Checkpoint("t.sampling-results", 0, 25, b"s25")
        assert [(c.topic, c.partition, c.next_offset) for c in store.load_all()] == [
            ("t.cell-weeks", 1, 3),
            ("t.sampling-results", 0, 25),
        ]
        # another consumer group has its own checkpoints in the same table
        assert other.load("t.sampling-results", 0) is None
        assert other.save([Checkpoint("t.sampling-results", 0, 5, b"g2")]) == 1
        assert store.load("t.sampling-results", 0) == Checkpoint("t.sampling-results", 0, 25, b"s25")
        # rows are large objects (pickled stage state), not limited like a small column
        big = bytes(range(256)) * 8192
        store.save([Checkpoint("t.patrol-reports", 2, 1, big)])
        loaded = store.load("t.patrol-reports", 2)
        assert loaded is not None and loaded.state == big
    finally:
        store.close()
        other.close()


async def _run_until_done(settings: StreamSettings, ends: dict[tuple[str, int], int]) -> float:
    """Run one pipeline until its checkpoints cover ``ends``; how many sampling records it read."""
    pipe = DetectionPipeline(settings)
    await pipe.start()
    task = asyncio.create_task(pipe.run())
    try:
        # every input record and every cell-week it caused
        await asyncio.to_thread(wait_done, settings, ends, 180)
    finally:
        pipe.request_stop()
        await task
        await pipe.stop()
    value = pipe.metrics.registry.get_sample_value(
        "qw_stream_records_in_total", {"topic": settings.topic_name("sampling-results")}
    )
    return value or 0.0


def test_restart_restores_from_the_postgresql_checkpoint(
    settings: StreamSettings, stream_data: StreamData, pg_url: str
) -> None:
    settings = settings.model_copy(update={"checkpoint_url": pg_url})
    history, later = stream_data.sampling[:2000], stream_data.sampling[2000:2300]
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(history, wait=True).end_offsets
    assert asyncio.run(_run_until_done(settings, ends)) == len(history)

    with RecordPusher(settings) as pusher:
        more = pusher.push_lines(later, wait=True).end_offsets
    # the second worker restores every partition from PostgreSQL and reads only the new records
    assert asyncio.run(_run_until_done(settings, more)) == len(later)
    result = collect(settings)
    counted = sum(c["accepted"] + c["duplicate"] for c in result.region_counts.values())
    assert counted == len(history) + len(later)
    assert_parity(result, reference_run(history + later, [], EPOCH))
