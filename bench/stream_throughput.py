"""Whole-pipeline throughput of one worker against a bare faust table agent, same broker, same records.

    python bench/stream_throughput.py [--records 20000] [--rounds 2]

One embedded broker for the whole run. Each round pushes the same simulated sampling results to a
fresh topic, then times, one after the other on that topic:

* a bare faust agent (its own worker process) that only counts records by key in a table, with the
  settings that suit the embedded broker (6 s session timeout, a 100 ms consumer fetch wait), timed
  from the first record it counts to the last;
* the detection pipeline (one ``DetectionPipeline``: decode, validation, dedup, every stage,
  publishing warnings and cell-weeks, checkpointing), timed from the first record it handles until
  it has handled every record ("processed") and until its checkpoints cover every record
  ("checkpointed", the stricter figure).

Each figure is printed with the load average when it was taken (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from stream_common import bench_settings, cpu_seconds, load, machine, rss_mb

from qualitywatch.evaluation import SimConfig, simulate
from stream.broker import EmbeddedBroker
from stream.pipeline import DetectionPipeline
from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import checkpoint_offsets

#: the consumer fetch wait that suits the embedded broker (faust itself hard-codes 1,500 ms)
BARE_FETCH_WAIT_MS = 100


def bare_agent_worker(bootstrap: str, topic: str, expect: int, out: Path) -> None:
    """Run a faust worker with one agent counting records by key in a table (a child process)."""
    import faust
    from faust.transport.drivers import aiokafka as faust_aiokafka
    from faust.worker import Worker

    make_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def short_fetch_wait(self: object, transport: object) -> object:
        consumer = make_consumer(self, transport)  # type: ignore[arg-type]
        consumer._fetch_max_wait_ms = BARE_FETCH_WAIT_MS  # read by aiokafka when the fetcher starts
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = short_fetch_wait  # type: ignore[method-assign]
    app = faust.App(
        f"bare{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=4,
        topic_replication_factor=1,
        autodiscover=False,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    counts = app.Table("counts", default=int, partitions=4)
    seen = {"n": 0, "t0": 0.0, "cpu0": 0.0}

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for key, _value in stream.items():
            counts[key.decode()] += 1
            seen["n"] += 1
            if seen["n"] == 1:
                seen["t0"] = time.perf_counter()
                seen["cpu0"] = cpu_seconds()
            if seen["n"] == expect:
                elapsed = time.perf_counter() - seen["t0"]
                cpu = cpu_seconds() - seen["cpu0"]
                out.write_text(json.dumps({"elapsed": elapsed, "cpu": cpu, "rss_mb": rss_mb()}))

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def run_bare_agent(bootstrap: str, topic: str, expect: int, tmp: Path) -> dict[str, float]:
    out = tmp / f"bare-{uuid.uuid4().hex[:8]}.json"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--bare-agent", bootstrap, topic, str(expect), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while not out.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the bare agent exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the bare agent did not count every record within 600 s")
            time.sleep(0.05)
        time.sleep(0.05)  # let the write finish
        result: dict[str, float] = json.loads(out.read_text())
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_pipeline(settings: StreamSettings, ends: dict[tuple[str, int], int]) -> dict[str, float]:
    pipe = DetectionPipeline(settings)
    await pipe.start()
    task = asyncio.create_task(pipe.run())

    def handled_all() -> bool:
        return all(
            (part := pipe._parts.get(tp)) is not None and part.next_offset >= end
            for tp, end in ((_tp(t, p), e) for (t, p), e in ends.items())
        )

    while pipe.processed == 0:
        await asyncio.sleep(0.002)
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    while not handled_all():
        await asyncio.sleep(0.005)
    processed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    while True:
        got = await asyncio.to_thread(checkpoint_offsets, settings)
        if all(got.get(k, 0) >= v for k, v in ends.items()):
            break
        await asyncio.sleep(0.02)
    checkpointed = time.perf_counter() - t0
    messages = pipe.processed
    pipe.request_stop()
    await task
    await pipe.stop()
    return {"processed": processed, "checkpointed": checkpointed, "messages": messages, "cpu": cpu}


def _tp(topic: str, partition: int) -> object:
    from aiokafka import TopicPartition

    return TopicPartition(topic, partition)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--bare-agent":
        bare_agent_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sim = simulate(SimConfig(seed=5, years=2))
    lines = [json.dumps(r).encode() for r in sim.records[: args.records]]
    n = len(lines)
    print(f"machine: {machine()}")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for rnd in range(1, args.rounds + 1):
            settings = bench_settings(broker.bootstrap, tmp)
            t0 = time.perf_counter()
            with RecordPusher(settings) as pusher:
                ends = pusher.push_lines(lines, wait=True).end_offsets
            push_s = time.perf_counter() - t0
            print(f"round {rnd}: push {n} records in {push_s:.2f} s = {n / push_s:,.0f} records/s ({load()})")

            before = load()
            bare = run_bare_agent(broker.bootstrap, settings.topic_name("sampling-results"), n, tmp)
            print(
                f"round {rnd}: bare faust table agent: {n} records in {bare['elapsed']:.2f} s = "
                f"{n / bare['elapsed']:,.0f} records/s; CPU {bare['cpu'] / n * 1e6:.0f} µs per record; "
                f"RSS {bare['rss_mb']:.0f} MB "
                f"({before}; after: {load()})"
            )

            before = load()
            pipe = asyncio.run(run_pipeline(settings, ends))
            print(
                f"round {rnd}: pipeline, one worker: {n} records ({pipe['messages']:.0f} messages incl. "
                f"cell-weeks) processed in {pipe['processed']:.2f} s = {n / pipe['processed']:,.0f} "
                f"records/s, checkpointed in {pipe['checkpointed']:.2f} s = "
                f"{n / pipe['checkpointed']:,.0f} records/s; CPU {pipe['cpu'] / n * 1e6:.0f} µs per record "
                f"until processed; RSS of the bench process {rss_mb():.0f} MB "
                f"({before}; after: {load()})"
            )


if __name__ == "__main__":
    main()
