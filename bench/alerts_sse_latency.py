"""Alert-service latency: a warning published to ``qw.warnings`` → its alert change on the SSE stream.

    QW_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        python bench/alerts_sse_latency.py --rate 50 --seconds 40 [--fetch-max-wait-ms 500]

Starts the embedded broker and ``qualitywatch alerts serve`` (a real uvicorn server on loopback with its
warnings consumer, on the settings' embedded profile) in a process of its own, opens ``/api/events``
with an admin token, then publishes warnings at a steady rate (N/5 fingerprints, so most fold into an
existing alert). A warning's latency is from just before its ``send`` to the first ``alert.*`` event of
its alert that shows it (``last_seen`` at or after the warning's ``raised_at``): when one batch folds
several warnings of an alert, the one event after the commit shows them all. Prints p50/p95/p99/max.
Uses its own schema on PostgreSQL and drops it at the end (SQLite: a temporary file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from kafka import KafkaProducer
from sqlalchemy import text

from alerts.auth.service import create_token
from alerts.db import make_engine, make_session_factory, migrate
from schemas import (
    Evidence,
    Level,
    RiskWarning,
    Scope,
    WarningKind,
    WarningStatus,
    default_catalogue,
    fingerprint_of,
    warning_id,
)
from stream.broker import EmbeddedBroker, free_port

REGIONS = ("653001", "653022", "653023", "653024")
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def make_warning(i: int, fingerprints: int, tag: str) -> RiskWarning:
    k = i % fingerprints
    scope = Scope(region=REGIONS[k % 4], industry="food_processing")
    detector = f"sse_{tag}_{k}"
    fp = fingerprint_of(detector, "regional", scope)
    raised = T0 + timedelta(minutes=i)  # later for each emission: none is stale
    return RiskWarning(
        id=warning_id(fp, "firing", raised, raised),
        fingerprint=fp,
        kind=WarningKind.regional,
        level=tuple(Level)[(i // fingerprints) % 4],
        status=WarningStatus.firing,
        scope=scope,
        detector=detector,
        raised_at=raised,
        window_start=raised - timedelta(weeks=1),
        window_end=raised,
        evidence=Evidence(tested=40, failed=9, observed_rate=0.225, expected_rate=0.05, record_ids=["r"]),
        summary="latency bench",
    )


class Tracker:
    """Warnings published and not yet seen, by fingerprint; latencies of those seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        self.latencies: list[float] = []
        self.measuring = False

    def published(self, w: RiskWarning, at: float) -> None:
        with self.lock:
            self.pending[w.fingerprint].append((w.raised_at, at))

    def seen(self, fingerprint: str, last_seen: datetime, at: float) -> None:
        with self.lock:
            waiting = self.pending.get(fingerprint, [])
            shown = [sent for raised, sent in waiting if raised <= last_seen]
            self.pending[fingerprint] = [(r, s) for r, s in waiting if r > last_seen]
            if self.measuring:
                self.latencies.extend(at - sent for sent in shown)

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.pending.values())


def read_events(
    url: str, token: str, tracker: Tracker, ready: threading.Event, held: list[httpx.Response]
) -> None:
    """Follow the SSE stream until it is closed (``held[0].close()`` from the main thread)."""
    params = {"access_token": token}
    with httpx.stream("GET", url, params=params, timeout=httpx.Timeout(10, read=60)) as resp:
        resp.raise_for_status()
        held.append(resp)
        event = None
        try:
            for line in resp.iter_lines():
                if line == ": connected":
                    ready.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event and event.startswith("alert."):
                    data = json.loads(line[6:])
                    seen_at = time.perf_counter()
                    tracker.seen(data["fingerprint"], datetime.fromisoformat(data["last_seen"]), seen_at)
        except (httpx.HTTPError, httpx.StreamError):  # closed by the main thread at the end
            return


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=50.0, help="warnings per second")
    ap.add_argument("--seconds", type=float, default=40.0, help="how long to publish")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds published before measuring")
    ap.add_argument(
        "--fetch-max-wait-ms", type=int, default=None, help="override the profile's (QW_FETCH_MAX_WAIT_MS)"
    )
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:8]
    tmp = tempfile.TemporaryDirectory()
    url = os.environ.get("QW_BENCH_DATABASE_URL", f"sqlite:///{tmp.name}/alerts.db")
    schema = f"bench_{tag}"
    server_url = url
    if url.startswith("postgresql"):
        with make_engine(url).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        server_url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(server_url)
    migrate(engine)
    with make_session_factory(engine)() as session:
        _, token = create_token(
            session,
            name="bench",
            role="admin",
            county=None,
            now=datetime.now(UTC),
            catalogue=default_catalogue(),
            actor="bench",
        )
        session.commit()
    engine.dispose()

    port = free_port()
    total = int(args.rate * (args.seconds + args.warmup))
    fingerprints = max(total // 5, 1)
    tracker = Tracker()
    held: list[httpx.Response] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        with EmbeddedBroker() as broker:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("QW_")},
                "QW_DATABASE_URL": server_url,
                "QW_BOOTSTRAP_SERVERS": broker.bootstrap,
                "QW_TOPIC_PREFIX": f"{tag}.",
                "QW_CONSUMER_GROUP": f"bench-{tag}",
                "QW_HOST": "127.0.0.1",
                "QW_PORT": str(port),
            }
            if args.fetch_max_wait_ms is not None:
                env["QW_FETCH_MAX_WAIT_MS"] = str(args.fetch_max_wait_ms)
            log = Path(tmp.name, "server.log")
            with log.open("wb") as out:
                server = subprocess.Popen(
                    [sys.executable, "-c", "from qualitywatch.cli import main; main()", "alerts", "serve"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the alert service did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            ready = threading.Event()
            reader = threading.Thread(
                target=read_events, args=(f"{base}/api/events", token, tracker, ready, held), daemon=True
            )
            reader.start()
            ready.wait(10)

            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, acks=1)
            topic = f"{tag}.qw.warnings"
            # the consumer joins the group while the first warnings wait; measure once they come through
            first = make_warning(0, fingerprints, tag)
            tracker.published(first, time.perf_counter())
            producer.send(topic, key=first.fingerprint.encode(), value=first.model_dump_json().encode())
            producer.flush()
            deadline = time.monotonic() + 60
            while tracker.outstanding() and time.monotonic() < deadline:
                time.sleep(0.05)
            start = time.perf_counter()
            measured_from = 1 + int(args.rate * args.warmup)
            for i in range(1, total):
                if i == measured_from:
                    tracker.measuring = True
                w = make_warning(i, fingerprints, tag)
                payload = w.model_dump_json().encode()
                due = start + (i - 1) / args.rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                tracker.published(w, time.perf_counter())
                producer.send(topic, key=w.fingerprint.encode(), value=payload)
            producer.flush()
            published_for = time.perf_counter() - start
            deadline = time.monotonic() + 30
            while tracker.outstanding() and time.monotonic() < deadline:
                time.sleep(0.05)
            producer.close()
            lat = [x * 1000 for x in tracker.latencies]
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(
                f"database: {make_engine(url).dialect.name}; rate: {args.rate:.0f}/s for "
                f"{published_for:.1f} s ({total - 1} warnings, {fingerprints} alerts); measured: {len(lat)} "
                f"(after {args.warmup:.0f} s warm-up); never shown: {tracker.outstanding()}"
            )
            if lat:
                p50, p95, p99 = (percentile(lat, q) for q in (0.50, 0.95, 0.99))
                print(
                    f"latency ms: p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f}  max {max(lat):.0f}; "
                    f"load average {load}"
                )
    finally:
        for resp in held:
            with contextlib.suppress(httpx.HTTPError, httpx.StreamError, RuntimeError):  # already closed
                resp.close()
        if server is not None and server.poll() is None:
            server.terminate()  # uvicorn: graceful on the first signal, immediate on the second
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.terminate()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        if url.startswith("postgresql"):
            with make_engine(url).begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        tmp.cleanup()


if __name__ == "__main__":
    main()
