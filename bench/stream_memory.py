"""Worker memory across a long run: 1,000,000 sampling results through one ``qualitywatch worker``.

    python bench/stream_memory.py [--records 1000000] [--every 5]

The records are the simulator's two years (``qualitywatch.evaluation.simulate``) replayed week by
week over 480 weeks ending this year (new ids and event times for every copy, the resubmitted
duplicates kept as duplicates), about 2,000 a week, so every window of the detectors fills and then
slides. They are pushed while the worker runs; the worker's resident memory is sampled from
``/proc`` every ``--every`` seconds until its checkpoints cover every record. Prints the first,
middle and last samples and the peak.

The embedded broker keeps every message in memory (about 390 bytes per record: ~400 MB here).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from stream_common import bench_settings, cpu_seconds, load, machine, rss_mb

from qualitywatch.evaluation import SimConfig, simulate
from stream.broker import EmbeddedBroker
from stream.producer import RecordPusher
from stream.testing import WorkerProc, checkpoint_offsets

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2017, 1, 2, tzinfo=ZONE)  # a Monday; 480 weeks later is still in the past
WEEKS = 480
SIM_START = datetime(2021, 1, 4, tzinfo=ZONE)  # the simulator's default first Monday


def records(total: int) -> Iterator[tuple[str, bytes]]:
    """(region, JSON) for ``total`` records spread evenly over ``WEEKS`` weeks from ``START``."""
    sim = simulate(SimConfig(seed=7, years=2))
    by_week: dict[int, list[dict[str, Any]]] = {}
    for r in sim.records:
        w = (datetime.fromisoformat(r["sampled_at"]) - SIM_START) // timedelta(weeks=1)
        by_week.setdefault(w, []).append(r)
    sim_weeks = sorted(by_week)
    per_week = total / WEEKS
    sent = 0
    for week in range(WEEKS):
        source = sim_weeks[week % len(sim_weeks)]
        template = by_week[source]
        shift = START + timedelta(weeks=week) - (SIM_START + timedelta(weeks=source))
        want = round(per_week * (week + 1)) - sent
        batch = []
        for i in range(want):
            r = dict(template[i % len(template)])
            copy = i // len(template)
            r["id"] = f"{r['id']}-w{week}-c{copy}"
            moved = shift + timedelta(minutes=copy)
            r["sampled_at"] = (datetime.fromisoformat(r["sampled_at"]) + moved).isoformat()
            if r.get("reported_at"):
                r["reported_at"] = (datetime.fromisoformat(r["reported_at"]) + moved).isoformat()
            batch.append(r)
        batch.sort(key=lambda r: r["sampled_at"])  # arrival in event-time order, like the simulator's
        for r in batch:
            yield r["region"], json.dumps(r).encode()
        sent += want


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--every", type=float, default=5.0)
    args = ap.parse_args()
    print(f"machine: {machine()}; {load()}", flush=True)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        settings = bench_settings(broker.bootstrap, tmp, epoch=START)
        worker = WorkerProc(settings, tmp / "worker.log").start()
        assert worker.proc is not None
        ends: dict[tuple[str, int], int] = {}
        pushed = {"n": 0, "done": False}

        def acked(md: Any) -> None:
            key = (md.topic, md.partition)
            ends[key] = max(ends.get(key, 0), md.offset + 1)

        def push() -> None:
            with RecordPusher(settings) as pusher:
                for region, raw in records(args.records):
                    fut = pusher.send_raw(settings.topic_name("sampling-results"), raw, key=region.encode())
                    fut.add_callback(acked)
                    pushed["n"] += 1
            pushed["done"] = True

        feeder = threading.Thread(target=push, daemon=True)
        t0 = time.monotonic()
        feeder.start()
        samples: list[tuple[float, int, int, float, str]] = []  # (s, pushed, checkpointed, MB, load)
        cpu = 0.0
        try:
            while True:
                cpu = cpu_seconds(worker.proc.pid)
                got = checkpoint_offsets(settings)
                done = sum(v for (t, _p), v in got.items() if t.endswith("sampling-results"))
                samples.append((time.monotonic() - t0, pushed["n"], done, rss_mb(worker.proc.pid), load()))
                s = samples[-1]
                print(
                    f"{s[0]:7.0f} s  pushed {s[1]:>9,}  checkpointed {s[2]:>9,}  "
                    f"worker RSS {s[3]:6.0f} MB  ({s[4]})",
                    flush=True,
                )
                if pushed["done"] and ends and all(got.get(k, 0) >= v for k, v in ends.items()):
                    break
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"the worker exited with status {worker.proc.returncode}")
                time.sleep(args.every)
        finally:
            worker.stop()
            feeder.join(5)
    elapsed = samples[-1][0]
    flowing = [s for s in samples if s[2] > 0] or samples
    first, middle, last = flowing[0], flowing[len(flowing) // 2], flowing[-1]
    print(f"{args.records:,} records in {elapsed:.0f} s ({args.records / elapsed:,.0f} records/s end to end)")
    for name, s in (("first", first), ("middle", middle), ("last", last)):
        print(f"worker RSS {name}: {s[3]:.0f} MB after {s[2]:,} records ({s[4]})")
    print(f"worker RSS peak: {max(s[3] for s in samples):.0f} MB")
    print(f"worker CPU: {cpu:.0f} s = {cpu / args.records * 1e6:.0f} µs per record")


if __name__ == "__main__":
    main()
