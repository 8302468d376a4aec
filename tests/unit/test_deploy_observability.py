"""deploy/prometheus and deploy/grafana, checked for real.

promtool validates the scrape configuration and the rules and runs the rules' unit tests; every
metric a rule or a dashboard query names must be exported by the code (the stream worker's, the alert
service's and ingest's prometheus-client registries), with the labels the query groups or filters by,
and label values the code can produce.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules" / "qualitywatch.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "qualitywatch.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; .ci/run installs it)"
)

#: metrics Prometheus makes itself
BUILTIN = {"up": set(), "scrape_duration_seconds": set()}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


# --------------------------------------------------------------------------------------------------
# what the code exports


def _populate(obj: object) -> list[CollectorRegistry]:
    """Give every labelled metric of ``obj`` one child, so its label names show in the samples."""
    for value in vars(obj).values():
        if isinstance(value, MetricWrapperBase) and value._labelnames:
            value.labels(*["x"] * len(value._labelnames))
    return [obj.registry]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name -> label names, over the worker, alert service and ingest registries."""
    from alerts import build_runtime
    from alerts.consumer import apply_batch
    from alerts.settings import AlertSettings
    from detectors.base import make_warning
    from schemas import Level
    from schemas.risk import Scope, WarningKind
    from stream.ingest import open_store
    from stream.ingest.metrics import RECORDS, ingest_registry
    from stream.metrics import StreamMetrics

    tmp = tmp_path_factory.mktemp("metrics")
    runtime = build_runtime(AlertSettings(database_url=f"sqlite:///{tmp / 'alerts.db'}", consume=False))
    week = datetime(2024, 1, 1, tzinfo=UTC)
    warning = make_warning(
        detector="rate_cusum",
        kind=WarningKind.regional,
        level=Level.yellow,
        scope=Scope(region="653001"),
        raised_at=week + timedelta(weeks=1),
        window_start=week,
        window_end=week + timedelta(weeks=1),
        tested=40,
        failed=9,
        expected_rate=0.05,
        summary="one alert, so that qw_alerts has a sample",
    )
    message = SimpleNamespace(
        value=warning.model_dump_json().encode(), topic="qw.warnings", partition=0, offset=0
    )
    assert apply_batch(runtime, [message]).rejected == 0
    registries = _populate(StreamMetrics()) + _populate(runtime.metrics)
    registries.append(ingest_registry(open_store(f"sqlite:///{tmp / 'ingest.db'}")))
    RECORDS.labels("sampling", "653001", "food", "accepted").inc(0)

    names: dict[str, set[str]] = {k: set(v) for k, v in BUILTIN.items()}
    for registry in registries:
        for family in registry.collect():
            labels = set().union(*(s.labels for s in family.samples)) if family.samples else set()
            samples = [family.name + s for s in SUFFIXES.get(family.type, ("",))]
            for sample in samples:
                le = {"le"} if sample.endswith("_bucket") else set()
                names.setdefault(sample, set()).update((labels - {"le"}) | le)
    return names


#: label values the code can produce, from its own enumerations
def _label_values() -> dict[tuple[str, str], set[str]]:
    from alerts.alert.models import AlertState
    from schemas import Level
    from schemas.risk import WarningKind, WarningStatus
    from stream.ingest.service import Status

    return {
        ("qw_ingest_records_total", "outcome"): set(typing.get_args(Status)),
        ("qw_stream_warnings_total", "status"): {s.value for s in WarningStatus},
        ("qw_stream_warnings_total", "kind"): {k.value for k in WarningKind},
        ("qw_stream_warnings_total", "level"): {v.value for v in Level},
        ("qw_alerts", "state"): {s.value for s in AlertState},
        ("qw_alerts", "level"): {v.value for v in Level},
        ("qw_notifications_total", "result"): {"sent", "failed", "retrying"},
    }


# --------------------------------------------------------------------------------------------------
# what the files ask for

_SELECTOR = re.compile(r"\b(qw_[a-z0-9_]+|up)\b(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_BY = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
#: labels Prometheus gives every sample from the scrape target, whatever the code exports
_TARGET_LABELS = frozenset({"job", "instance"})


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in dash["templating"]["list"]:
        yield f"variable {var['name']}", var["definition"]


def check_expr(where: str, expr: str, exported: dict[str, set[str]]) -> list[str]:
    """Problems of one PromQL expression against the exported metrics (empty when it is right)."""
    problems = []
    expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1d")
    used = [(m.group(1), m.group(2) or "") for m in _SELECTOR.finditer(expr)]
    if not used and not re.fullmatch(r"vector\(\d+\)", expr.strip()):
        problems.append(f"{where}: names no metric")
    values = _label_values()
    for name, matchers in used:
        if name not in exported:
            problems.append(f"{where}: metric {name} is not exported by the code")
            continue
        for label, _op, value in _MATCHER.findall(matchers):
            if label in _TARGET_LABELS:
                continue
            if label not in exported[name]:
                problems.append(f"{where}: {name} has no label {label!r} (it has {sorted(exported[name])})")
            allowed = values.get((name, label))
            if allowed and "$" not in value and not any(re.fullmatch(value, v) for v in allowed):
                problems.append(f"{where}: {name}{{{label}}} is never {value!r} (values: {sorted(allowed)})")
    for group in _BY.findall(expr):
        for label in (x.strip() for x in group.split(",")):
            for name, _ in used:
                if name in exported and label not in exported[name] | _TARGET_LABELS:
                    problems.append(f"{where}: grouped by {label!r}, which {name} does not have")
    for var in re.findall(r"label_values\((\w+),\s*(\w+)\)", expr):
        if var[1] not in exported.get(var[0], set()):
            problems.append(f"{where}: {var[0]} has no label {var[1]!r}")
    return problems


# --------------------------------------------------------------------------------------------------
# promtool


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=PROM)


@needs_promtool
def test_promtool_accepts_the_scrape_configuration() -> None:
    done = _promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{sum(1 for _ in rule_exprs())} rules found" in done.stdout


@needs_promtool
def test_the_rules_fire_on_what_they_name_and_not_before() -> None:
    done = _promtool("test", "rules", "tests/rules_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a syntax error is refused."""
    bad = tmp_path / "bad.rules.yml"
    bad.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum by (topic (x)\n"
    )
    assert _promtool("check", "rules", str(bad)).returncode != 0


# --------------------------------------------------------------------------------------------------
# metric names and labels


def test_the_alerts_asked_for_are_there() -> None:
    names = {n for n, _ in rule_exprs()}
    assert {
        "QualityWatchWorkerDown",
        "QualityWatchConsumerLagGrowing",
        "QualityWatchDeadLetterRate",
        "QualityWatchOutboxBacklog",
        "QualityWatchNotificationFailures",
        "QualityWatchNoRecordsIngested",
    } <= names


@pytest.mark.parametrize("where,expr", list(rule_exprs()), ids=[n for n, _ in rule_exprs()])
def test_rule_names_exported_metrics(where: str, expr: str, exported: dict[str, set[str]]) -> None:
    assert check_expr(where, expr, exported) == []


def test_dashboard_queries_name_exported_metrics(exported: dict[str, set[str]]) -> None:
    problems = [p for where, expr in dashboard_exprs() for p in check_expr(where, expr, exported)]
    assert problems == []


def test_the_cross_check_catches_a_wrong_name_or_label(exported: dict[str, set[str]]) -> None:
    assert check_expr("t", "rate(qw_stream_records_total[5m])", exported)
    assert check_expr("t", "sum by (county) (rate(qw_stream_records_in_total[5m]))", exported)
    assert check_expr("t", 'qw_alerts{state="open"}', exported)
    assert check_expr("t", 'increase(qw_ingest_records_total{outcome="accepted"}[1h])', exported) == []
    assert check_expr("t", "sum by (instance) (qw_stream_consumer_lag) and on (instance) up", exported) == []
    assert check_expr("t", "x and on (county) qw_stream_consumer_lag", exported)


def test_k8s_prometheus_rule_is_the_same_rules_file() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "monitoring.yaml").read_text()))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


# --------------------------------------------------------------------------------------------------
# scrape targets and the dashboard's plumbing


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_every_process_is_scraped_on_its_configured_port() -> None:
    compose = _compose()["services"]
    jobs = {j["job_name"]: j for j in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]}
    worker = jobs["qw-worker"]["dns_sd_configs"][0]
    assert worker["names"] == ["worker"]
    assert str(worker["port"]) == compose["worker"]["environment"]["QW_WEB_PORT"]
    assert jobs["qw-alerts"]["static_configs"][0]["targets"] == [
        f"alerts:{compose['alerts']['environment']['QW_PORT']}"
    ]
    ingest_cmd = compose["ingest"]["command"]
    assert jobs["qw-ingest"]["static_configs"][0]["targets"] == [
        f"ingest:{ingest_cmd[ingest_cmd.index('--port') + 1]}"
    ]


def test_dashboard_is_provisioned_from_the_mounted_directory() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "qualitywatch.yaml").read_text())["providers"][0]
    mounts = _compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert source["url"] == "http://prometheus:9090"
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            assert panel["targets"], panel["title"]


def test_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(e for _, e in dashboard_exprs())
    for needle in (
        'sum by (county) (rate(qw_ingest_records_total{outcome="accepted"',
        'sum by (industry) (rate(qw_ingest_records_total{outcome="rejected"',
        "qw_stream_records_in_total",
        "qw_stream_consumer_lag",
        "sum by (kind, level) (rate(qw_stream_warnings_total",
        "sum by (state) (qw_alerts",
        "qw_time_to_acknowledge_seconds_bucket",
    ):
        assert needle in exprs, needle


def test_ingest_front_door_serves_healthz_and_metrics(tmp_path: Path) -> None:
    """What the probes and the scrape of the ingest service hit, through its real app factory."""
    from fastapi.testclient import TestClient

    from qualitywatch.server import create_app
    from stream.ingest import IngestSettings, Principal, static_verifier
    from stream.settings import StreamSettings

    app = create_app(
        settings=IngestSettings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}"),
        stream_settings=StreamSettings(bootstrap_servers="127.0.0.1:1"),
        verify=static_verifier({"t": Principal(name="lab", role="inspector", region=None)}),
        relay=False,
    )
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        rows = [{"id": "r-1", "region": "653001", "industry": "no-such-industry"}, "not a record"]
        done = client.post("/api/v1/sampling-results:batch", json=rows, headers={"Authorization": "Bearer t"})
        assert done.status_code == 200 and done.json()["rejected"] == 2
        text = client.get("/metrics").text
    assert "qw_ingest_outbox_pending 0.0" in text
    assert "qw_ingest_outbox_oldest_pending_seconds 0.0" in text
    assert (
        'qw_ingest_records_total{county="653001",industry="unknown",kind="sampling",outcome="rejected"}'
        in text
    )
    assert (
        'qw_ingest_records_total{county="unknown",industry="unknown",kind="sampling",outcome="rejected"}'
        in text
    )


def test_operations_guide_lists_every_alert() -> None:
    """Each platform alert has a row in docs/operations.md's table (what it means, where to look first)."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    table = guide[guide.index("| alert | when | first look |") :].split("\n\n", 1)[0]
    named = set(re.findall(r"`(?:QualityWatch)?(\w+)`", table))
    missing = [n for n, _ in rule_exprs() if n.removeprefix("QualityWatch") not in named]
    assert missing == []
