"""The deployment's production profile, run unchanged against the embedded broker.

The workers and the alert service get the environment ``deploy/compose.yaml`` gives them (production
profile: 45 s session timeout, 500 ms fetch wait, acks=all with an idempotent producer, replication
3) with only what must differ on one machine replaced: bootstrap servers, database URLs, listen ports,
the epoch of the simulated data, per-test topic names and groups, and the idempotent producer
(aiokafka's InitProducerId fails on the embedded broker). The topics are pre-created as
``deploy/kafka/topics.conf`` says (the deployment's partition count, RF 3, min.insync.replicas 2),
two workers share them in one group, and every warning they raise reaches the alert store.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EPOCH, StreamData
from sqlalchemy import create_engine, func, select

from stream.broker import EmbeddedBroker
from stream.producer import RecordPusher
from stream.settings import StreamSettings
from stream.testing import WorkerProc, checkpoint_offsets, reference_run, wait_done
from stream.topics import Topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")
#: the operator's deploy/.env, as far as these services read it
DOT_ENV = {"POSTGRES_PASSWORD": "pg", "WEBHOOK_SECRET": "hook-secret", "SMTP_PASSWORD": "smtp-secret"}


def compose_env(service: str) -> dict[str, str]:
    """The environment deploy/compose.yaml gives ``service`` (``${VAR:-default}`` resolved)."""
    env = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"][service]["environment"]

    def sub(m: re.Match[str]) -> str:
        return DOT_ENV.get(m.group(1), m.group(2) or "")

    return {k: _VAR.sub(sub, str(v)) for k, v in env.items()}


def topics_conf() -> dict[str, dict[str, str]]:
    out = {}
    for line in (DEPLOY / "kafka" / "topics.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *configs = line.split()
            out[name] = dict(c.split("=") for c in ",".join(configs).split(",") if c)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def wait_http(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = get(url)
            if status == 200:
                return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from qualitywatch.cli import main; main()", *args]


@pytest.fixture
def procs() -> Any:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_production_profile_two_workers_and_the_alert_service(
    broker: EmbeddedBroker, stream_data: StreamData, tmp_path: Path, procs: list[Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    prefix = f"t{tag}."
    worker_env = compose_env("worker")
    partitions = int(worker_env["QW_PARTITIONS"])
    assert worker_env["QW_PROFILE"] == "production" and partitions > 4  # not Tansu's default layout
    worker_env.update(
        QW_BOOTSTRAP_SERVERS=broker.bootstrap,
        QW_CHECKPOINT_URL=f"sqlite:///{tmp_path / 'checkpoints.db'}",
        QW_EPOCH=EPOCH.isoformat(),
        QW_TOPIC_PREFIX=prefix,
        QW_GROUP_ID=f"g{tag}",
        QW_APP_ID=f"qw{tag}",
        QW_WEB_HOST="127.0.0.1",
        # the one production setting the embedded broker cannot take: aiokafka's idempotent producer
        # gets UnknownError to InitProducerId from Tansu (a real Kafka cluster grants it)
        QW_ENABLE_IDEMPOTENCE="false",
    )
    settings = StreamSettings(**{k[3:].lower(): v for k, v in worker_env.items() if k.startswith("QW_")})
    assert (settings.acks, settings.session_timeout_ms, settings.replication_factor) == ("all", 45000, 3)
    topics = Topics.from_settings(settings)

    # the topics as the deployment creates them (kafka-topics service)
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(prefix + name, partitions, 3, topic_configs={"min.insync.replicas": "2", **configs})
                for name, configs in topics_conf().items()
            ]
        )
        layout = {
            t.get("name", t.get("topic")): len(t["partitions"])
            for t in admin.describe_topics(list(topics.all))
        }
    finally:
        admin.close()
    assert layout == dict.fromkeys(topics.all, partitions)

    # the alert service: migrate, then serve, with the compose environment
    alerts_env = compose_env("alerts")
    alerts_port = free_port()
    alerts_db = tmp_path / "alerts.db"
    alerts_env.update(
        QW_BOOTSTRAP_SERVERS=broker.bootstrap,
        QW_DATABASE_URL=f"sqlite:///{alerts_db}",
        QW_TOPIC_PREFIX=prefix,
        QW_CONSUMER_GROUP=f"a{tag}",
        QW_HOST="127.0.0.1",
        QW_PORT=str(alerts_port),
    )
    assert alerts_env["QW_ENVIRONMENT"] == "production"
    base = {k: v for k, v in os.environ.items() if not k.startswith("QW_")}
    # the migration job first: every store, the workers' checkpoint store too
    migrate_env = compose_env("migrate")
    migrate_env.update(
        QW_BOOTSTRAP_SERVERS=broker.bootstrap,
        QW_DATABASE_URL=alerts_env["QW_DATABASE_URL"],
        QW_CHECKPOINT_URL=worker_env["QW_CHECKPOINT_URL"],
        QW_EPOCH=worker_env["QW_EPOCH"],
    )
    job = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["migrate"]["command"]
    assert job[0] == "qualitywatch"
    migrated = subprocess.run(
        cli(*job[1:]), env={**base, **migrate_env}, cwd=tmp_path, check=True, timeout=120, capture_output=True
    ).stdout.decode()
    assert f"checkpoint store {worker_env['QW_CHECKPOINT_URL']}: created at 0001" in migrated, migrated
    alerts_log = (tmp_path / "alerts.log").open("ab")
    procs.append(
        subprocess.Popen(
            cli("alerts", "serve"),
            env={**base, **alerts_env},
            cwd=tmp_path,
            stdout=alerts_log,
            stderr=subprocess.STDOUT,
        )
    )

    # two workers in one group
    workers = []
    for n in range(2):
        port = free_port()
        log = tmp_path / f"worker{n}.log"
        env = {**base, **worker_env, "QW_WEB_PORT": str(port)}
        procs.append(
            subprocess.Popen(
                cli("worker", "--loglevel", "info"),
                env=env,
                cwd=tmp_path,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
            )
        )
        workers.append((WorkerProc(settings, log), port))

    with RecordPusher(settings) as pusher:
        a = pusher.push_lines(stream_data.sampling, wait=True)
        b = pusher.push_lines(stream_data.patrols, wait=True)
    assert not a.problems and not b.problems
    wait_done(settings, a.end_offsets | b.end_offsets, timeout=150)

    # both workers did work, and together they covered every input partition
    assigned = [w.assigned() for w, _ in workers]
    assert all(assigned), assigned
    inputs = {f"{t}[{p}]" for t in topics.inputs for p in range(partitions)}
    assert set().union(*assigned) == inputs
    saved = checkpoint_offsets(settings)
    # keyed by county: the prefecture's four counties fill at most four of the partitions
    used = {p for (t, p) in a.end_offsets if t == topics.sampling}
    assert {p for (t, p) in saved if t == topics.sampling} == used and len(used) <= 4

    # every warning the stream raised is in the alert store
    reference = reference_run(stream_data.sampling, stream_data.patrols, EPOCH)
    assert reference.warnings, "the data raises warnings"
    engine = create_engine(f"sqlite:///{alerts_db}")
    from alerts.alert.models import Alert, ReceivedWarning

    deadline = time.monotonic() + 60
    while True:
        with engine.connect() as conn:
            received = set(conn.execute(select(ReceivedWarning.id)).scalars())
            alerts = conn.execute(select(func.count()).select_from(Alert)).scalar_one()
        if received >= set(reference.warnings) or time.monotonic() > deadline:
            break
        time.sleep(1)
    engine.dispose()
    assert received == set(reference.warnings)
    assert alerts == len({w["fingerprint"] for w in reference.warnings.values()})

    # the probes and metrics the deployment relies on answer
    for _, port in workers:
        assert json.loads(wait_http(f"http://127.0.0.1:{port}/healthz", 10))["status"] == "ok"
        metrics = wait_http(f"http://127.0.0.1:{port}/metrics", 10)
        assert "qw_stream_records_in_total" in metrics
    assert json.loads(wait_http(f"http://127.0.0.1:{alerts_port}/healthz", 10)) == {"status": "ok"}
    assert 'qw_warnings_consumed_total{change="new"}' in wait_http(
        f"http://127.0.0.1:{alerts_port}/metrics", 10
    )
