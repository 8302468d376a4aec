"""A restarted worker resumes from its checkpoint: it reads only what came after, never the history."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import StreamData
from sqlalchemy import text

from schemas import default_catalogue
from stream.checkpoint import (
    Checkpoint,
    CheckpointSettingsError,
    CheckpointStore,
    CheckpointVersionError,
    checkpoints,
    decode_state,
)
from stream.pipeline import DetectionPipeline
from stream.producer import RecordPusher
from stream.readback import read_topic
from stream.settings import StreamSettings
from stream.stages import CellWeekPartition
from stream.testing import checkpoint_offsets, collect, settings_env

pytestmark = pytest.mark.integration
CAT = default_catalogue()


async def _run_until_checkpointed(
    settings: StreamSettings, ends: dict[tuple[str, int], int], clock: Callable[[], datetime] | None = None
) -> DetectionPipeline:
    pipe = DetectionPipeline(settings, clock=clock)
    await pipe.start()
    task = asyncio.create_task(pipe.run())
    try:
        for _ in range(600):
            got = await asyncio.to_thread(checkpoint_offsets, settings)
            if all(got.get(k, 0) >= v for k, v in ends.items()):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"checkpoints did not reach {ends}")
    finally:
        pipe.request_stop()
        await task
        await pipe.stop()
    return pipe


def _read(pipe: DetectionPipeline, topic: str) -> float:
    value = pipe.metrics.registry.get_sample_value("qw_stream_records_in_total", {"topic": topic})
    return value or 0.0


def test_restart_reads_only_what_came_after_the_checkpoint(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    history, later = stream_data.sampling[:4000], stream_data.sampling[4000:4300]
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(history, wait=True).end_offsets
    first = asyncio.run(_run_until_checkpointed(settings, ends))
    sampling_topic = settings.topic_name("sampling-results")
    assert _read(first, sampling_topic) == len(history)

    with RecordPusher(settings) as pusher:
        more = pusher.push_lines(later, wait=True).end_offsets
    second = asyncio.run(_run_until_checkpointed(settings, more))
    # the second worker restored the state and read the 300 new records, none of the 4,000 before
    assert _read(second, sampling_topic) == len(later)
    counted = sum(c["accepted"] + c["duplicate"] for c in collect(settings).region_counts.values())
    assert counted == len(history) + len(later)


def test_a_checkpoint_of_another_state_version_stops_the_worker_and_is_kept(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(stream_data.sampling[:500], wait=True).end_offsets
    asyncio.run(_run_until_checkpointed(settings, ends))
    # rewrite every checkpoint as a release before state versions would have written it
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        old = [
            Checkpoint(cp.topic, cp.partition, cp.next_offset, pickle.dumps(decode_state(cp.state)))
            for cp in store.load_all()
        ]
        with store.engine.begin() as conn:
            conn.execute(checkpoints.delete().where(checkpoints.c.group_id == settings.group_id))
        store.save(old)
    finally:
        store.close()

    async def restart() -> None:
        pipe = DetectionPipeline(settings)
        await pipe.start()
        try:
            await asyncio.wait_for(pipe.run(), timeout=60)
        finally:
            await pipe.stop()

    with pytest.raises(CheckpointVersionError, match="stage state version 1, this release reads version"):
        asyncio.run(restart())
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        assert sorted(store.load_all(), key=lambda c: (c.topic, c.partition)) == sorted(
            old, key=lambda c: (c.topic, c.partition)
        )  # nothing overwritten: the operator decides
    finally:
        store.close()


def test_a_worker_restarted_with_another_seed_refuses_the_checkpoints_and_keeps_them(
    settings: StreamSettings, stream_data: StreamData, caplog: pytest.LogCaptureFixture
) -> None:
    # the seed and the catalogue are frozen inside the checkpointed stages: a worker restarted with
    # others went on detecting with the old ones on every restored partition, and said nothing
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(stream_data.sampling[:500], wait=True).end_offsets
    asyncio.run(_run_until_checkpointed(settings, ends))
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        before = store.load_all()
    finally:
        store.close()

    async def restart() -> None:
        pipe = DetectionPipeline(settings.model_copy(update={"seed": 7}))
        await pipe.start()
        try:
            await asyncio.wait_for(pipe.run(), timeout=60)
        finally:
            await pipe.stop()

    refused = pytest.raises(CheckpointSettingsError, match=r"QW_SEED \(0 in the checkpoint, 7 now\)")
    with caplog.at_level(logging.ERROR, logger="stream.pipeline"), refused:
        asyncio.run(restart())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "replay the input topics" in errors[0].getMessage()
    # the worker process: one ERROR line (no crash report after it) and exit status 1
    done = _worker_exits(settings.model_copy(update={"seed": 7}))
    said = (done.stdout + done.stderr).splitlines()
    alarms = [line for line in said if any(w in line for w in ("[ERROR]", "[CRITICAL]", "Traceback"))]
    assert done.returncode == 1, said[-20:]
    assert len(alarms) == 1 and "QW_SEED (0 in the checkpoint, 7 now)" in alarms[0], alarms
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        assert store.load_all() == before  # nothing overwritten: the operator decides
    finally:
        store.close()


def test_a_silent_county_does_not_hold_the_industry_and_systemic_weeks_back(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    silent = CAT.region_codes[-1]
    # half a year of three counties; the fourth sends nothing
    lines = [raw for raw in stream_data.sampling[:6000] if json.loads(raw)["region"] != silent]
    clock = _Clock(datetime(2026, 3, 2, 9, tzinfo=UTC))  # the worker's clock: 15 minutes a message
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(lines, wait=True).end_offsets
    pipe = asyncio.run(_run_until_checkpointed(settings, ends, clock))
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        states = [decode_state(cp.state) for cp in store.load_all()]
    finally:
        store.close()
    released = [w for s in states if isinstance(s, CellWeekPartition) for w in s.incomplete_weeks]
    # every week released early lacks the silent county (a county read far behind the others by this
    # fast clock may be missing from one too)
    assert len(released) >= 3 and all(silent in counties for _week, counties in released)
    assert pipe.metrics.registry.get_sample_value("qw_stream_weeks_released_incomplete_total") == len(
        released
    )


def test_a_changed_idle_county_release_applies_to_the_partitions_restored_from_checkpoints(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    # the setting was kept inside the checkpointed state: a worker restarted with another value went on
    # with the old one (here: waiting for ever for a silent county) on every partition it restored
    silent = CAT.region_codes[-1]
    lines = [raw for raw in stream_data.sampling[:6000] if json.loads(raw)["region"] != silent]
    first, later = lines[:3000], lines[3000:]
    waiting = settings.model_copy(update={"idle_county_release_hours": 0})  # 0: wait for ever
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(first, wait=True).end_offsets
    clock = _Clock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    asyncio.run(_run_until_checkpointed(waiting, ends, clock))
    asyncio.run(_run_until_checkpointed(waiting, _cell_ends(settings), clock))
    cell_topic = settings.topic_name("cell-weeks")
    assert _released(settings) == []  # held back, as that setting says
    assert {p for t, p in checkpoint_offsets(settings) if t == cell_topic} == {0, 1, 2, 3}

    with RecordPusher(settings) as pusher:
        more = pusher.push_lines(later, wait=True).end_offsets
    # restarted with the default (72 h), a month later by the worker's clock
    clock = _Clock(datetime(2026, 4, 6, 9, tzinfo=UTC))
    pipes = [asyncio.run(_run_until_checkpointed(settings, more, clock))]
    pipes.append(asyncio.run(_run_until_checkpointed(settings, _cell_ends(settings), clock)))
    released = _released(settings)
    assert released and all(silent in counties for _week, counties in released)
    metric = "qw_stream_weeks_released_incomplete_total"
    assert sum(p.metrics.registry.get_sample_value(metric) or 0 for p in pipes) == len(released)


def _cell_ends(settings: StreamSettings) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for m in read_topic(settings, settings.topic_name("cell-weeks")):
        ends[(m.topic, m.partition)] = max(ends.get((m.topic, m.partition), 0), m.offset + 1)
    return ends


def _released(settings: StreamSettings) -> list[tuple[datetime, tuple[str, ...]]]:
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        states = [decode_state(cp.state) for cp in store.load_all()]
    finally:
        store.close()
    return [w for s in states if isinstance(s, CellWeekPartition) for w in s.incomplete_weeks]


class _Clock:
    """A clock that moves 15 minutes each time it is read (once a message, at least)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=15)
        return self.now


def _worker_exits(settings: StreamSettings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from qualitywatch.cli import main; main()", "worker"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=400,  # generous: the worker must give up by itself well before
    )


def test_a_checkpoint_store_that_never_answers_stops_the_worker_with_a_clear_error(
    settings: StreamSettings, tmp_path: Path
) -> None:
    # a PostgreSQL address where something accepts the connection and never answers (a hung server,
    # a proxy in front of a dead one): the worker says so and exits instead of hanging silently
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql+psycopg://qw:secret@127.0.0.1:{port}/qualitywatch"
        done = _worker_exits(settings.model_copy(update={"checkpoint_url": url}))
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"checkpoint store postgresql+psycopg://qw:***@127.0.0.1:{port}/qualitywatch" in done.stderr
    assert "cannot be reached" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr

    missing = f"sqlite:///{tmp_path / 'no-such-directory' / 'checkpoints.db'}"
    done = _worker_exits(settings.model_copy(update={"checkpoint_url": missing}))
    assert done.returncode == 1, done.stderr[-2000:]
    assert "cannot be reached or prepared: unable to open database file" in done.stderr


def test_a_revocation_whose_checkpoint_fails_forgets_the_partitions_and_restores_them_from_the_store(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    # a partition kept in memory after a failed checkpoint would be neither restored nor sought when
    # assigned again, and carry on from a state another worker may have moved past meanwhile
    first, later = stream_data.sampling[:1000], stream_data.sampling[1000:1300]
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(first, wait=True).end_offsets
    asyncio.run(_run_until_checkpointed(settings, ends))
    saved = checkpoint_offsets(settings)
    quiet = settings.model_copy(update={"checkpoint_interval_s": 3600.0})  # no checkpoint meanwhile
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    sampling_topic = settings.topic_name("sampling-results")

    async def scenario() -> None:
        pipe = DetectionPipeline(quiet)
        await pipe.start()
        task = asyncio.create_task(pipe.run())
        try:
            with RecordPusher(settings) as pusher:
                await asyncio.to_thread(pusher.push_lines, later, wait=True)
            for _ in range(600):  # read into memory, past the last checkpoint
                if _read(pipe, sampling_topic) >= len(later):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the later records were not read")
            pipe.request_stop()
            await task  # stop reading; the partitions are still held
            mine = set(pipe._parts)
            ahead = {(tp.topic, tp.partition): pipe._parts[tp].next_offset for tp in mine}
            assert any(ahead[k] > saved.get(k, 0) for k in ahead)  # memory is past the store
            with store.engine.begin() as conn:  # the store fails: its table is gone for a while
                conn.execute(text("ALTER TABLE stream_checkpoints RENAME TO stream_checkpoints_away"))
            await pipe._revoke(mine)  # as the consumer's rebalance calls it; the error is logged
            assert not mine & set(pipe._parts)
            with store.engine.begin() as conn:
                conn.execute(text("ALTER TABLE stream_checkpoints_away RENAME TO stream_checkpoints"))
            await pipe._assign(mine)  # assigned back: restored from the store, not from memory
            restored = {(tp.topic, tp.partition): pipe._parts[tp].next_offset for tp in mine}
            assert restored == {k: saved.get(k, 0) for k in restored}
        finally:
            await pipe.stop()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
