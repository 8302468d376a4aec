"""Whole-pipeline throughput of one detection consumer on the embedded broker.

    python bench/stream_throughput.py [--records 20000]

Pushes simulated sampling results, then times one in-process ``DetectionPipeline`` from its first
partition assignment until its checkpoints cover every record (so decode, validation, dedup, the
stages, publishing warnings and cell-weeks and checkpointing are all included). Prints records/s and
the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from qualitywatch.evaluation import SimConfig, simulate
from stream.broker import EmbeddedBroker
from stream.pipeline import DetectionPipeline
from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import checkpoint_offsets


async def _consume(settings: StreamSettings, ends: dict[tuple[str, int], int]) -> tuple[float, int]:
    pipe = DetectionPipeline(settings)
    await pipe.start()
    task = asyncio.create_task(pipe.run())
    while not pipe._parts:  # wait for the group join (half the session timeout on this broker)
        await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    while True:
        got = await asyncio.to_thread(checkpoint_offsets, settings)
        if all(got.get(k, 0) >= v for k, v in ends.items()):
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    pipe.request_stop()
    await task
    await pipe.stop()
    return elapsed, pipe.processed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=20000)
    args = ap.parse_args()
    sim = simulate(SimConfig(seed=5, years=2))
    lines = [json.dumps(r).encode() for r in sim.records[: args.records]]
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = StreamSettings(
            bootstrap_servers=broker.bootstrap,
            epoch=datetime(2021, 1, 4, tzinfo=ZoneInfo("Asia/Shanghai")),
            checkpoint_url=f"sqlite:///{Path(tmp) / 'cp.db'}",
            web_enabled=False,
        )
        t0 = time.perf_counter()
        with RecordPusher(settings) as pusher:
            ends = pusher.push_lines(lines, wait=True).end_offsets
        push_s = time.perf_counter() - t0
        elapsed, processed = asyncio.run(_consume(settings, ends))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"push: {len(lines)} records in {push_s:.2f} s = {len(lines) / push_s:,.0f} records/s")
    print(f"pipeline: {len(lines)} records ({processed} messages incl. cell-weeks) in {elapsed:.2f} s "
          f"= {len(lines) / elapsed:,.0f} records/s; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
