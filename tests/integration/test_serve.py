"""``qualitywatch serve``: the alert service and the ingest API in one app, on one token store.

In-process first (each API keeps its own error bodies, one OpenAPI document, one /metrics), then
with its lifespan running against the real embedded broker: the outbox relay puts an inspector's
record on its topic, and the warnings consumer turns a warning into an alert the API lists.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer

from alerts import AlertSettings, build_runtime
from alerts.auth.service import create_token
from qualitywatch.server import create_platform_app
from schemas import (
    Evidence,
    Level,
    RiskWarning,
    Scope,
    WarningKind,
    WarningStatus,
    fingerprint_of,
    uscc_check_char,
    warning_id,
)
from stream.broker import EmbeddedBroker
from stream.ingest import IngestSettings
from stream.settings import StreamSettings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
THREADS = ("qw-outbox-relay", "qw-warnings", "qw-cell-weeks")


def _uscc(n: int) -> str:
    first = f"91653022MA7E{n:05d}"[:17]
    return first + uscc_check_char(first)


def _patrol(n: int, region: str = "653022", severity: str = "major") -> dict[str, Any]:
    return {
        "id": f"SERVE-P-{n}",
        "patrolled_at": (NOW - timedelta(hours=1)).isoformat(),
        "region": region,
        "industry": "food_processing",
        "enterprise_id": _uscc(n),
        "inspector_id": "insp-9",
        "hazard": "aflatoxin_b1",
        "severity": severity,
        "action": "suspended",
        "note": "",
    }


def _alert_settings(tmp_path: Path, **kw: Any) -> AlertSettings:
    return AlertSettings(
        environment="test",
        webhook_secret="test-webhook-secret",
        smtp_password="test-smtp-password",
        database_url=f"sqlite:///{tmp_path / 'alerts.db'}",
        **kw,
    )


def _tokens(runtime: Any) -> Callable[..., dict[str, str]]:
    def make(role: str, county: str | None = None) -> dict[str, str]:
        with runtime.session() as s:
            _, clear = create_token(
                s, name=f"{role}-{county}", role=role, county=county, now=NOW, catalogue=runtime.catalogue
            )
            s.commit()
        return {"Authorization": f"Bearer {clear}"}

    return make


def test_one_app_one_token_store_each_api_keeps_its_errors(tmp_path: Path) -> None:
    runtime = build_runtime(_alert_settings(tmp_path, consume=False))
    app = create_platform_app(
        runtime=runtime,
        settings=IngestSettings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}"),
        stream_settings=StreamSettings(bootstrap_servers="127.0.0.1:1"),
        background=False,
        relay=False,
    )
    token = _tokens(runtime)
    admin, inspector, duty = token("admin"), token("inspector", "653022"), token("duty_officer")
    with TestClient(app, raise_server_exceptions=False) as client:
        # an inspector's token from the alert store pushes a record; the same store answers the alert API
        r = client.post("/api/v1/patrol-reports", json=_patrol(1), headers=inspector)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "accepted"
        assert client.post("/api/v1/patrol-reports", json=_patrol(1), headers=inspector).status_code == 200
        assert client.get("/api/alerts", headers=inspector).status_code == 200
        assert client.post("/api/v1/patrol-reports", json=_patrol(2), headers=admin).status_code == 201
        r = client.get("/api/alerts", headers=admin)
        assert r.status_code == 200 and r.json()["items"] == []
        # scope and role refusals from the one store
        assert (
            client.post("/api/v1/patrol-reports", json=_patrol(3, "653024"), headers=inspector).status_code
            == 403
        )
        assert client.post("/api/v1/patrol-reports", json=_patrol(4), headers=duty).status_code == 403
        assert client.post("/api/v1/patrol-reports", json=_patrol(5)).status_code == 401
        assert client.get("/api/alerts").status_code == 401

        # ingest's own error body on an invalid record ...
        bad = dict(_patrol(6), severity="catastrophic")
        r = client.post("/api/v1/patrol-reports", json=bad, headers=admin)
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert detail["error"] == "rejected" and detail["errors"][0]["field"] == "severity"
        # ... and on a request that does not validate (the shape ingest documents)
        files = {"file": ("x.csv", b"id\n", "text/csv")}
        r = client.post("/api/v1/imports?kind=lasagne", files=files, headers=admin)
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert detail["error"] == "invalid_request" and detail["errors"][0]["field"] == "kind"
        # the alert service's error body on its routes
        r = client.get("/api/alerts/987654", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = client.get("/api/stats/grid?weeks=0", headers=admin)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "invalid" and r.json()["error"]["field"] == "query.weeks"

        # one OpenAPI document, docs, health and metrics of both sides
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/v1/sampling-results", "/api/v1/imports", "/api/alerts", "/api/stats/grid"} <= set(paths)
        assert client.get("/docs").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}
        metrics = client.get("/metrics").text
        assert "qw_ingest_outbox_pending 2.0" in metrics  # two accepted, no relay
        assert 'qw_ingest_records_total{county="653022",industry="food_processing",kind="patrol"' in metrics
        assert "qw_alerts" in metrics
        assert client.get("/dashboard/").status_code == 200


def _warning(region: str) -> RiskWarning:
    scope = Scope(region=region, industry="food_processing", item="aflatoxin_b1", enterprise_id=_uscc(7))
    fp = fingerprint_of("patrol_major", "site", scope)
    return RiskWarning(
        id=warning_id(fp, "firing", NOW, NOW),
        fingerprint=fp,
        kind=WarningKind.site,
        level=Level.red,
        status=WarningStatus.firing,
        scope=scope,
        detector="patrol_major",
        raised_at=NOW,
        window_start=NOW - timedelta(weeks=1),
        window_end=NOW,
        evidence=Evidence(
            tested=1,
            failed=1,
            observed_rate=1.0,
            expected_rate=0.0,
            statistic=1.0,
            threshold=1.0,
            record_ids=["x"],
        ),
        summary="major hazard: aflatoxin B1 at an enterprise in Akto [red]",
    )


def test_lifespan_runs_the_relay_and_the_consumers(broker: EmbeddedBroker, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    prefix = f"t{tag}."
    runtime = build_runtime(
        _alert_settings(
            tmp_path,
            bootstrap_servers=broker.bootstrap,
            topic_prefix=prefix,
            warnings_topic="warnings",
            cell_weeks_topic="cell-weeks",
            consumer_group=f"ga{tag}",
            stats_consumer_group=f"gs{tag}",
            session_timeout_ms=6000,
            fetch_max_wait_ms=100,
            tick_interval_s=0.5,
        )
    )
    stream = StreamSettings(bootstrap_servers=broker.bootstrap, topic_prefix=prefix)
    app = create_platform_app(
        runtime=runtime,
        settings=IngestSettings(
            database_url=f"sqlite:///{tmp_path / 'ingest.db'}", relay_poll_interval_s=0.1
        ),
        stream_settings=stream,
    )
    admin = _tokens(runtime)("admin")
    with TestClient(app) as client:
        running = {t.name for t in threading.enumerate()}
        assert set(THREADS) <= running
        assert client.post("/api/v1/patrol-reports", json=_patrol(11), headers=admin).status_code == 201

        consumer = KafkaConsumer(
            f"{prefix}patrol-reports",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=15000,
            fetch_max_wait_ms=100,
        )
        got = []
        for msg in consumer:
            got.append(msg)
            break
        consumer.close()
        assert len(got) == 1 and got[0].key == b"653022"
        assert json.loads(got[0].value)["id"] == "SERVE-P-11"

        w = _warning("653022")
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(f"{prefix}warnings", key=w.fingerprint.encode(), value=w.model_dump_json().encode())
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 30
        items: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not items:
            items = client.get("/api/alerts", headers=admin).json()["items"]
            time.sleep(0.2)
        assert [(a["fingerprint"], a["level"]) for a in items] == [(w.fingerprint, "red")]
    # stopping the app stopped the relay and the consumers
    time.sleep(0.2)
    assert not set(THREADS) & {t.name for t in threading.enumerate() if t.is_alive()}
