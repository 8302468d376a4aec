"""Alert-service throughput: warnings consumed from the embedded broker and stored, per second.

    QW_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        python bench/alerts_throughput.py --warnings 20000

Publishes N warnings (N/5 fingerprints, so most fold into existing alerts) to a fresh topic, then
times one consumer applying them all (pipeline, database commit, offset commit). Uses its own
schema on PostgreSQL and drops it at the end (SQLite: a temporary file).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer
from sqlalchemy import text

from alerts.clock import SystemClock
from alerts.consumer import make_consumer, run_consumer
from alerts.db import make_engine, make_session_factory, migrate
from alerts.runtime import Runtime
from alerts.settings import AlertSettings
from schemas import (
    Evidence,
    Level,
    RiskWarning,
    Scope,
    WarningKind,
    WarningStatus,
    fingerprint_of,
    warning_id,
)
from stream.broker import EmbeddedBroker

REGIONS = ("653001", "653022", "653023", "653024")
LEVELS = tuple(Level)


def warnings(n: int) -> list[RiskWarning]:
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    out = []
    for i in range(n):
        detector = f"bench_{(i // 4) % (n // 20 or 1)}"
        scope = Scope(region=REGIONS[i % 4], industry="food_processing")
        fp = fingerprint_of(detector, "regional", scope)
        raised = t0 + timedelta(minutes=i)
        out.append(
            RiskWarning(
                id=warning_id(fp, "firing", raised, raised),
                fingerprint=fp,
                kind=WarningKind.regional,
                level=LEVELS[(i // 7) % 4],
                status=WarningStatus.firing,
                scope=scope,
                detector=detector,
                raised_at=raised,
                window_start=raised - timedelta(weeks=1),
                window_end=raised,
                evidence=Evidence(
                    tested=40, failed=9, observed_rate=0.225, expected_rate=0.05, record_ids=["r"]
                ),
                summary="bench",
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warnings", type=int, default=20_000)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = os.environ.get("QW_BENCH_DATABASE_URL", f"sqlite:///{tmp.name}/bench-alerts.db")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    kwargs = {}
    if url.startswith("postgresql"):
        with make_engine(url).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        kwargs = {"connect_args": {"options": f"-csearch_path={schema}"}}
    engine = make_engine(url, **kwargs)
    migrate(engine)
    n = args.warnings
    records = [(w.fingerprint.encode(), w.model_dump_json().encode()) for w in warnings(n)]
    try:
        with EmbeddedBroker() as broker:
            settings = AlertSettings(
                bootstrap_servers=broker.bootstrap,
                topic_prefix=f"{schema}.",
                session_timeout_ms=6000,
                fetch_max_wait_ms=100,
            )
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
            for key, value in records:
                producer.send(settings.topic, key=key, value=value)
            producer.flush()
            producer.close()
            del records  # the timed process holds only what the service would
            gc.collect()
            gc.freeze()  # as `qualitywatch alerts serve` does once started
            rt = Runtime(settings=settings, session_factory=make_session_factory(engine), clock=SystemClock())
            consumer = make_consumer(rt)
            consumer.poll(timeout_ms=10_000, max_records=1)  # join the group before timing
            consumer.seek_to_beginning()
            start = time.perf_counter()
            seen = run_consumer(
                runtime=rt, stop=threading.Event(), consumer=consumer, until=lambda seen: seen >= n
            )
            elapsed = time.perf_counter() - start
            consumer.close()
        print(
            f"database: {engine.dialect.name}; warnings: {seen}; seconds: {elapsed:.2f}; "
            f"warnings/s: {seen / elapsed:,.0f}"
        )
    finally:
        engine.dispose()
        tmp.cleanup()
        if url.startswith("postgresql"):
            with make_engine(url).begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
