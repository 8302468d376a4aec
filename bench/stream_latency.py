"""Latency from a record produced to its warning on ``qw.warnings``, at a steady input rate.

    python bench/stream_latency.py [--rate 1000] [--seconds 30] [--rounds 2]

A ``qualitywatch worker`` process (embedded profile: 100 ms fetch wait) on the embedded broker. A
kafka-python producer sends patrol reports at ``--rate`` records/s, each a major hazard, so each
raises a site warning as soon as the patrol stage releases it; a kafka-python consumer (100 ms fetch
wait) reads ``qw.warnings``. Latency = the warning's arrival at the consumer minus the moment its
record was handed to the producer (one clock: both in this process).

The county stages hold a record back until event time has moved ``allowed_lateness`` (2 days) past
it, to restore event-time order. So that every measured record is released the moment it arrives,
each county first gets one report stamped an hour ago; the measured reports are stamped earlier than
that minus 2 days, an hour of event time apart, in order (five enterprises per county).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from stream_common import bench_settings, cpu_seconds, load, machine

from schemas import default_catalogue
from schemas.uscc import uscc_check_char
from stream.broker import EmbeddedBroker
from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import WorkerProc
from stream.topics import Topics

ZONE = ZoneInfo("Asia/Shanghai")
#: event time between two measured reports, and the enterprises with open major hazards per county
SPACING = timedelta(hours=1)
ENTERPRISES = 5


def enterprise_id(region: str, n: int) -> str:
    first17 = f"91{region}{n:09d}"
    return first17 + uscc_check_char(first17)


Report = tuple[str, str, bytes]  # (record id, region: the message key, JSON)


def workload(rate: int, seconds: float, now: datetime) -> tuple[list[Report], list[Report]]:
    """(high-water reports, measured reports) in sending order."""
    regions = default_catalogue().region_codes
    high = []
    for region in regions:
        doc = {
            "id": f"HW-{region}",
            "patrolled_at": (now - timedelta(hours=1)).astimezone(ZONE).isoformat(),
            "region": region,
            "industry": "textiles",
            "enterprise_id": enterprise_id(region, 1),
            "inspector_id": f"INS-{region}-01",
            "hazard": "formaldehyde",
            "severity": "general",
            "action": "rectified_on_site",
            "note": "",
        }
        high.append((doc["id"], region, json.dumps(doc).encode()))
    count = int(rate * seconds)
    start = (now - timedelta(days=3) - count * SPACING).astimezone(ZONE)
    measured = []
    for i in range(count):
        region = regions[i % len(regions)]
        doc = {
            "id": f"LAT-{i:07d}",
            "patrolled_at": (start + i * SPACING).isoformat(),
            "region": region,
            "industry": "textiles",
            "enterprise_id": enterprise_id(region, 2 + (i // len(regions)) % ENTERPRISES),
            "inspector_id": f"INS-{region}-02",
            "hazard": "formaldehyde",
            "severity": "major",
            "action": "rectification_ordered",
            "note": "",
        }
        measured.append((doc["id"], region, json.dumps(doc).encode()))
    return high, measured


def epoch_for(now: datetime, count: int) -> datetime:
    """A Monday 00:00 before the first measured report."""
    first = (now - timedelta(days=4) - count * SPACING).astimezone(ZONE)
    monday = first.date() - timedelta(days=first.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=ZONE)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def one_round(broker: EmbeddedBroker, tmp: Path, rate: int, seconds: float, **overrides: object) -> str:
    now = datetime.now(UTC)
    count = int(rate * seconds)
    settings: StreamSettings = bench_settings(broker.bootstrap, tmp, epoch=epoch_for(now, count), **overrides)
    topics = Topics.from_settings(settings)
    high, measured = workload(rate, seconds, now)
    worker = WorkerProc(settings, tmp / f"worker-{settings.group_id}.log").start()
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topics.warnings,
        **settings.client_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        deadline = time.monotonic() + 120
        while len(worker.assigned()) < 3 * settings.partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not assigned every partition: {worker.assigned()}")
            time.sleep(0.1)
        consumer.poll(timeout_ms=500)  # join the topic before the clock starts
        sent_at: dict[str, float] = {}
        with RecordPusher(settings) as pusher:
            for _rid, region, raw in high:
                pusher.send_raw(topics.patrols, raw, key=region.encode())
            pusher.flush()
            time.sleep(1.0)

            def produce() -> None:
                t0 = time.perf_counter()
                for i, (rid, region, raw) in enumerate(measured):
                    due = t0 + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    sent_at[rid] = time.time()
                    pusher.send_raw(topics.patrols, raw, key=region.encode())

            feeder = threading.Thread(target=produce, daemon=True)
            load_before = load()
            assert worker.proc is not None
            cpu_before = cpu_seconds(worker.proc.pid)
            feeder.start()
            latencies: dict[str, float] = {}
            end = time.monotonic() + seconds + 60
            while len(latencies) < count and time.monotonic() < end:
                for msgs in consumer.poll(timeout_ms=100).values():
                    now_s = time.time()
                    for m in msgs:
                        doc = json.loads(m.value)
                        for rid in doc["evidence"].get("record_ids", []):
                            if rid in sent_at and rid not in latencies:
                                latencies[rid] = now_s - sent_at[rid]
            feeder.join()
            load_after = load()
            worker_cpu = cpu_seconds(worker.proc.pid) - cpu_before
    finally:
        consumer.close()
        worker.stop()
    ms = [v * 1000 for v in latencies.values()]
    if not ms:
        return f"no warning arrived for {count} records ({load_before})"
    return (
        f"{count} records at {rate}/s, {len(ms)} warnings matched: p50 {percentile(ms, 50):.0f} ms, "
        f"p90 {percentile(ms, 90):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms; "
        f"worker CPU {worker_cpu / count * 1e6:.0f} µs per record ({load_before}; after: {load_after})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--checkpoint-interval", type=float, help="QW_CHECKPOINT_INTERVAL_S of the worker")
    args = ap.parse_args()
    overrides = {"checkpoint_interval_s": args.checkpoint_interval} if args.checkpoint_interval else {}
    print(f"machine: {machine()}")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmpdir:
        for rnd in range(1, args.rounds + 1):
            result = one_round(broker, Path(tmpdir), args.rate, args.seconds, **overrides)
            print(f"round {rnd}: {result}", flush=True)


if __name__ == "__main__":
    main()
