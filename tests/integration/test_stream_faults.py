"""The stream against the real embedded broker: parity with replay, kill -9, two workers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import EPOCH, StreamData

from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import assert_parity, checkpoint_offsets, collect, reference_run, wait_done
from stream.topics import Topics

pytestmark = pytest.mark.integration


def region_major(lines: list[bytes]) -> list[bytes]:
    """The same records, county after county (each county's own order kept)."""
    import json

    return sorted(lines, key=lambda raw: json.loads(raw)["region"])


def push(settings: StreamSettings, data: StreamData, reorder: bool = False) -> dict[tuple[str, int], int]:
    sampling = region_major(data.sampling) if reorder else data.sampling
    with RecordPusher(settings) as pusher:
        a = pusher.push_lines(sampling, wait=True)
        b = pusher.push_lines(data.patrols, wait=True)
    assert not a.problems and not b.problems
    return a.end_offsets | b.end_offsets


@pytest.fixture
def reference(stream_data: StreamData) -> Any:
    return reference_run(stream_data.sampling, stream_data.patrols, EPOCH)


def test_parity_with_replay_however_counties_interleave(
    settings: StreamSettings, stream_data: StreamData, reference: Any, start_worker: Any
) -> None:
    ends = push(settings, stream_data, reorder=True)
    start_worker()
    wait_done(settings, ends)
    result = collect(settings)
    assert sum(c["accepted"] for c in result.region_counts.values()) > 5000
    assert sum(c["duplicate"] for c in result.region_counts.values()) > 0
    assert len(result.cells) == 4 * 8 * 12  # 4 counties x 8 industries x the 12 closed weeks
    assert_parity(result, reference)


def test_kill9_halfway_then_restart_loses_nothing_counts_nothing_twice(
    settings: StreamSettings, stream_data: StreamData, reference: Any, start_worker: Any
) -> None:
    ends = push(settings, stream_data)
    total = sum(v for (t, _p), v in ends.items() if t == Topics.from_settings(settings).sampling)
    first = start_worker()
    deadline = time.monotonic() + 90
    while True:
        done = sum(v for (t, _p), v in checkpoint_offsets(settings).items() if t.endswith("sampling-results"))
        if done >= total * 0.3:
            break
        assert time.monotonic() < deadline, "worker made no progress"
        time.sleep(0.05)
    first.kill9()
    assert done < total, "the worker finished before it could be killed halfway"
    start_worker()
    wait_done(settings, ends)
    result = collect(settings)
    assert_parity(result, reference)


def test_two_workers_share_partitions_and_raise_the_same_warnings(
    settings: StreamSettings, stream_data: StreamData, reference: Any, start_worker: Any
) -> None:
    a = start_worker()
    b = start_worker()
    time.sleep(1)
    ends = push(settings, stream_data)
    wait_done(settings, ends)
    result = collect(settings)
    assert_parity(result, reference)
    got_a, got_b = a.assigned(), b.assigned()
    assert got_a and got_b, (got_a, got_b)
