"""The worker's ``/metrics`` against the real broker: the figures issue 3 names, moving as records flow.

Records in, invalid and duplicates per topic, detector time, warnings by kind and level, consumer
lag. One uninterrupted worker, so every counter must equal what the in-process engine makes of the
same records exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import EPOCH, StreamData
from prometheus_client.parser import text_string_to_metric_families

from stream.broker import free_port
from stream.pipeline import DetectionPipeline
from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import WorkerProc, collect, reference_run, wait_done
from stream.topics import Topics

pytestmark = pytest.mark.integration

COUNTY = b"653022"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, timeout: float = 60) -> Samples:
    """Every sample of ``/metrics`` as {(name, sorted labels): value}; waits for the web server."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over the samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def test_metrics_endpoint_counts_what_flowed(
    settings: StreamSettings, stream_data: StreamData, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings.model_copy(update={"web_enabled": True, "web_port": port})
    topics = Topics.from_settings(settings)
    sampling, patrols = stream_data.sampling[:1500], stream_data.patrols[:200]
    resent = sampling[:40]  # the same records again: duplicates, never counted twice
    bad = [b"\xff\xfe garbage", b'{"id": "half a record']

    worker = WorkerProc(settings, tmp_path / "worker.log").start()
    try:
        before = scrape(port)
        assert total(before, "qw_stream_records_in_total") == 0
        assert total(before, "qw_stream_warnings_total") == 0
        assert value(before, "qw_stream_last_checkpoint_timestamp_seconds") == 0
        pushed_at = time.time()

        with RecordPusher(settings) as pusher:
            ends = pusher.push_lines(sampling + resent, wait=True).end_offsets
            ends |= pusher.push_lines(patrols, wait=True).end_offsets
            futures = [
                pusher.send_raw(t, v, key=COUNTY) for t in (topics.sampling, topics.patrols) for v in bad
            ]
            for md in (f.get(timeout=30) for f in futures):
                ends[(md.topic, md.partition)] = max(ends.get((md.topic, md.partition), 0), md.offset + 1)
        wait_done(settings, ends)
        after = scrape(port)
    finally:
        worker.stop()

    ref = reference_run(sampling + resent, patrols, EPOCH)
    result = collect(settings)

    # records in / invalid / duplicates, per input topic
    n_sampling, n_patrols = len(sampling) + len(resent) + len(bad), len(patrols) + len(bad)
    assert value(after, "qw_stream_records_in_total", topic=topics.sampling) == n_sampling
    assert value(after, "qw_stream_records_in_total", topic=topics.patrols) == n_patrols
    cells_seen = sum(result.cells_seen.values())
    assert value(after, "qw_stream_records_in_total", topic=topics.cell_weeks) == cells_seen
    assert value(after, "qw_stream_records_invalid_total", topic=topics.sampling) == len(bad)
    assert value(after, "qw_stream_records_invalid_total", topic=topics.patrols) == len(bad)
    ref_dupes = sum(c["duplicate"] for c in ref.region_counts.values())
    assert ref_dupes >= len(resent)
    assert value(after, "qw_stream_records_duplicate_total", topic=topics.sampling) == ref_dupes

    # detector time: one observation per message that reached the stages
    for topic, n in ((topics.sampling, n_sampling), (topics.patrols, n_patrols)):
        assert value(after, "qw_stream_detector_seconds_count", topic=topic) == n - len(bad)
        assert value(after, "qw_stream_detector_seconds_sum", topic=topic) > 0

    # warnings by kind, level and status: what the engine raised, each once
    want = Counter((w["kind"], w["level"], w["status"]) for w in ref.warnings.values())
    assert len(want) > 1
    got = {
        (dict(lab)["kind"], dict(lab)["level"], dict(lab)["status"]): v
        for (name, lab), v in after.items()
        if name == "qw_stream_warnings_total" and v
    }
    assert got == want
    assert sum(got.values()) == result.warning_copies == len(ref.warnings)

    # consumer lag: one gauge per assigned input partition, nothing left once all is processed
    lags = {dict(lab)["topic"] for (name, lab), _v in after.items() if name == "qw_stream_consumer_lag"}
    assert lags == {topics.sampling, topics.patrols, topics.cell_weeks}
    assert total(after, "qw_stream_consumer_lag") == 0
    assert value(after, "qw_stream_checkpoints_total") > 0
    # when progress was last saved: after the records came, so it covers them
    assert value(after, "qw_stream_last_checkpoint_timestamp_seconds") >= pushed_at


def test_consumer_lag_is_positive_while_behind_and_zero_when_caught_up(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    """Lag = high watermark of the fetch responses - next offset: the backlog, then nothing.

    The high watermark comes with every fetch response (right on Kafka and on the embedded broker),
    not from ListOffsets, whose end offsets the embedded broker misreports (``docs/stream.md``).
    """
    settings = settings.model_copy(update={"max_poll_records": 20})
    topic = settings.topic_name("sampling-results")
    with RecordPusher(settings, batch_size=16 * 1024) as pusher:
        ends = pusher.push_lines(stream_data.sampling[:3000], wait=True).end_offsets

    async def run() -> tuple[float, float, DetectionPipeline]:
        pipe = DetectionPipeline(settings)
        await pipe.start()
        task = asyncio.create_task(pipe.run())
        peak = 0.0
        try:
            while True:
                lag = sum(
                    pipe.metrics.registry.get_sample_value(
                        "qw_stream_consumer_lag", {"topic": topic, "partition": str(p)}
                    )
                    or 0.0
                    for _t, p in ends
                )
                peak = max(peak, lag)
                parts = {(tp.topic, tp.partition): part.next_offset for tp, part in pipe._parts.items()}
                if all(parts.get(k, 0) >= v for k, v in ends.items()):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # one more fetch round after the last record
            final = sum(
                pipe.metrics.registry.get_sample_value(
                    "qw_stream_consumer_lag", {"topic": topic, "partition": str(p)}
                )
                or 0.0
                for _t, p in ends
            )
        finally:
            pipe.request_stop()
            await task
            await pipe.stop()
        return peak, final, pipe

    peak, final, _pipe = asyncio.run(run())
    backlog = sum(ends.values())
    assert backlog / 2 <= peak <= backlog  # read in batches of 20: about the whole backlog shows
    assert final == 0


def health(port: int, path: str = "/healthz", timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the worker's ``path``; waits for the web server."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_healthz_is_ready_only_with_partitions_and_says_which_and_how_old_the_checkpoint_is(
    settings: StreamSettings, stream_data: StreamData, tmp_path: Path
) -> None:
    # one partition a topic (three in all) and four workers: one of them gets none. Before, /healthz
    # said ok for it too, and for every worker before it had joined its group.
    settings = settings.model_copy(update={"partitions": 1, "web_enabled": True})
    ports = [free_port() for _ in range(4)]
    workers = [
        WorkerProc(settings.model_copy(update={"web_port": p}), tmp_path / f"worker{i}.log")
        for i, p in enumerate(ports)
    ]
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + 120
        while sorted(health(p)[0] for p in ports) != [200, 200, 200, 503] and time.monotonic() < deadline:
            time.sleep(0.5)  # all joined, the group settled
        with RecordPusher(settings) as pusher:
            ends = pusher.push_lines(stream_data.sampling[:200], wait=True).end_offsets
        wait_done(settings, ends)
        answers = sorted(((health(p), health(p, "/livez")) for p in ports), key=lambda a: a[0][0])
    finally:
        for w in workers:
            w.stop()
    ready = [h for (h, _live) in answers if h[0] == 200]
    assert len(ready) == 3 and all(h[1]["status"] == "ok" and len(h[1]["partitions"]) == 1 for h in ready)
    assert sorted(p for h in ready for p in h[1]["partitions"]) == sorted(
        f"{settings.topic_name(t)}[0]" for t in ("sampling-results", "patrol-reports", "cell-weeks")
    )
    sampling = next(h for h in ready if "sampling-results" in h[1]["partitions"][0])
    assert sampling[1]["last_checkpoint_age_seconds"] >= 0  # it has saved the records it read
    # not ready, with a reason; alive all the same: liveness must not restart a worker left waiting
    idle = answers[-1][0]
    assert idle[0] == 503 and idle[1]["status"] == "waiting for partitions"
    assert idle[1]["partitions"] == [] and "no partition" in idle[1]["reason"]
    assert all(live == (200, {"status": "alive"}) for (_h, live) in answers)
