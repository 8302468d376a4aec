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
    # the first half of the file is on the topic when the worker starts; it is killed once it has
    # checkpointed part of it, so the kill always lands halfway through the file however fast it runs
    half = len(stream_data.sampling) // 2
    with RecordPusher(settings) as pusher:
        first_half = pusher.push_lines(stream_data.sampling[:half], wait=True)
    assert not first_half.problems
    sampling_topic = Topics.from_settings(settings).sampling
    first = start_worker()
    deadline = time.monotonic() + 90
    while True:
        done = sum(v for (t, _p), v in checkpoint_offsets(settings).items() if t == sampling_topic)
        if done >= half * 0.3:
            break
        assert time.monotonic() < deadline, "worker made no progress"
        time.sleep(0.02)
    first.kill9()
    with RecordPusher(settings) as pusher:
        rest = pusher.push_lines(stream_data.sampling[half:], wait=True)
        patrols = pusher.push_lines(stream_data.patrols, wait=True)
    assert not rest.problems and not patrols.problems
    ends = {k: max(first_half.end_offsets.get(k, 0), v) for k, v in rest.end_offsets.items()}
    ends = first_half.end_offsets | ends | patrols.end_offsets
    total = sum(v for (t, _p), v in ends.items() if t == sampling_topic)
    assert done < total, "the worker was killed before the end of the file"
    start_worker()
    wait_done(settings, ends)
    result = collect(settings)
    assert_parity(result, reference)


def test_two_workers_share_partitions_and_raise_the_same_warnings(
    settings: StreamSettings, stream_data: StreamData, reference: Any, start_worker: Any
) -> None:
    a = start_worker()
    b = start_worker()
    # the workers create the topics and join the group; push once both hold partitions, or one of
    # them may finish the whole input before the group's rebalance hands the other any
    deadline = time.monotonic() + 90
    while not (a.assigned() and b.assigned()):
        assert time.monotonic() < deadline, ("no partitions shared", a.assigned(), b.assigned())
        time.sleep(0.2)
    ends = push(settings, stream_data)
    wait_done(settings, ends)
    result = collect(settings)
    assert_parity(result, reference)
    got_a, got_b = a.assigned(), b.assigned()
    assert got_a and got_b, (got_a, got_b)
