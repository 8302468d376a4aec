"""Another prefecture's reference catalogue (``QW_CATALOGUE_PATH``) in the alert service.

The service loads the catalogue once at start, as the stream worker and ingest do: the dashboard's
catalogue, the statistics and the cell-weeks consumer follow it (a Kizilsu county is refused there),
tokens, silences and routes take its counties and refuse Kizilsu's, ``qualitywatch serve`` gives ingest
the same catalogue, and a file that cannot be loaded stops the service at start with one line naming the
variable.
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from cell_weeks import cell_week
from click.testing import CliRunner
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from alerts import build_runtime
from alerts.auth.service import create_token
from alerts.clock import SystemClock
from alerts.errors import SettingsError
from alerts.runtime import Runtime
from alerts.settings import AlertSettings, load_settings
from alerts.stats.consumer import make_stats_consumer, run_stats_consumer
from detectors.base import CellWeek
from qualitywatch.cli import main
from qualitywatch.server import create_platform_app
from schemas import catalogue as packaged
from schemas import uscc_check_char
from stream.broker import EmbeddedBroker
from stream.codec import encode_cell_week
from stream.ingest import IngestSettings
from stream.settings import StreamSettings

#: a fictional prefecture of three counties, with the packaged industries, items and targets
HUBIN = {"code": "990100", "name_zh": "湖滨州", "name_en": "Hubin Prefecture"}
COUNTIES = [
    {"code": "990101", "name_zh": "湖滨市", "name_en": "Hubin City", "aliases": ["Hubin"]},
    {"code": "990121", "name_zh": "山阳县", "name_en": "Shanyang County", "aliases": ["Shanyang"]},
    {"code": "990122", "name_zh": "河口县", "name_en": "Hekou County", "aliases": ["Hekou"]},
]
SHANYANG, AKTO = "990121", "653022"
ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 1, 5, tzinfo=ZONE)


def write_catalogue(path: Path) -> Path:
    """The packaged catalogue with Hubin's prefecture and counties in place of Kizilsu's."""
    data = yaml.safe_load(packaged.DEFAULT_PATH.read_text(encoding="utf-8"))
    data["prefecture"], data["regions"] = HUBIN, COUNTIES
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    packaged.load_catalogue(path)  # it is a valid catalogue
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QW_CATALOGUE_PATH", "QW_DATABASE_URL", "QW_ENVIRONMENT", "QW_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def catalogue_file(tmp_path: Path) -> Path:
    return write_catalogue(tmp_path / "hubin.yaml")


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, catalogue_file: Path) -> AlertSettings:
    """The alert fixtures' settings, the catalogue set as a deployment sets it."""
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(catalogue_file))
    return load_settings(
        environment="test",
        webhook_secret="test-webhook-secret",
        smtp_password="test-smtp-password",
        notify_max_attempts=3,
        notify_backoff_s=10,
        external_url="http://alerts.test",
    )


def _cell(region: str, industry: str, week: int, tested: int, failed: int) -> CellWeek:
    return cell_week(MONDAY, region, industry, week, tested, failed)


def _body(*cells: CellWeek) -> dict[str, Any]:
    return {
        "cells": [
            {
                "region": c.region,
                "industry": c.industry,
                "week_start": c.week_start.isoformat(),
                "week_end": c.week_end.isoformat(),
                "tested": c.tested,
                "failed": c.failed,
            }
            for c in cells
        ]
    }


def test_the_dashboards_catalogue_is_the_configured_one(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    cat = client.get("/api/stats/catalogue", headers=token("duty_officer")).json()
    assert cat["prefecture"] == {"code": "990100", "zh": "湖滨州", "en": "Hubin Prefecture"}
    assert cat["counties"] == [{"code": c["code"], "zh": c["name_zh"], "en": c["name_en"]} for c in COUNTIES]
    assert {i["slug"] for i in cat["industries"]} >= {"textiles", "food_processing"}


def test_statistics_follow_the_configured_catalogue(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    admin = token("admin")
    r = client.post("/api/stats/cell-weeks", json=_body(_cell(SHANYANG, "textiles", 0, 40, 4)), headers=admin)
    assert r.status_code == 202 and r.json() == {"recorded": 1}
    r = client.post("/api/stats/cell-weeks", json=_body(_cell(AKTO, "textiles", 0, 40, 4)), headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "cells[0].region"
    assert "653022" in r.json()["error"]["message"]

    g = client.get("/api/stats/grid", headers=admin).json()
    assert g["counties"] == [c["code"] for c in COUNTIES]
    cells = {(c["county"], c["industry"]): c for c in g["cells"]}
    assert (cells[(SHANYANG, "textiles")]["tested"], cells[(SHANYANG, "textiles")]["failed"]) == (40, 4)
    r = client.get(f"/api/stats/series?county={AKTO}", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "county"
    rows = client.get("/api/stats/pass-rates?by=county", headers=admin).json()["rows"]
    assert [(r["county"], r["tested"], r["failed"]) for r in rows if r["tested"]] == [(SHANYANG, 40, 4)]
    assert {r["county"] for r in rows} == {c["code"] for c in COUNTIES}
    text = client.get("/api/stats/pass-rates?format=csv&lang=en", headers=admin).content.decode()
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [t["county_name"] for t in table if t["tested"] != "0"] == ["Shanyang County"]
    assert {t["county_name"] for t in table} == {c["name_en"] for c in COUNTIES}


def test_a_token_for_a_county_of_the_catalogue_sees_that_county(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    admin = token("admin")
    r = client.post(
        "/api/tokens", json={"name": "shanyang", "role": "duty_officer", "county": SHANYANG}, headers=admin
    )
    assert r.status_code == 201 and r.json()["county"] == SHANYANG
    duty = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/api/me", headers=duty).json()["county"] == SHANYANG
    client.post("/api/stats/cell-weeks", json=_body(_cell(SHANYANG, "textiles", 0, 10, 1)), headers=admin)
    g = client.get("/api/stats/grid", headers=duty).json()
    assert g["counties"] == [SHANYANG] and {c["county"] for c in g["cells"]} == {SHANYANG}


def test_the_token_command_issues_a_token_for_a_county_of_the_catalogue(
    monkeypatch: pytest.MonkeyPatch, catalogue_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(catalogue_file))
    monkeypatch.setenv("QW_DATABASE_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    command = ["alerts", "token", "create", "--name", "shanyang", "--role", "duty_officer"]
    result = CliRunner().invoke(main, [*command, "--county", SHANYANG])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip()) > 20


def test_tokens_silences_and_routes_take_the_catalogues_counties_and_refuse_kizilsus(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    admin = token("admin")
    when = {"starts_at": "2026-03-02T00:00:00+00:00", "ends_at": "2026-03-03T00:00:00+00:00"}
    for path, body in (
        ("/api/tokens", {"name": "officer", "role": "duty_officer"}),
        ("/api/silences", {**when, "reason": "lab", "industry": "textiles"}),
        ("/api/routes", {"name": "shanyang", "team": "shanyang", "industry": "textiles"}),
    ):
        r = client.post(path, headers=admin, json={**body, "county": AKTO})
        assert r.status_code == 422, (path, r.text)
        error = r.json()["error"]
        assert error["field"] == "county" and r.json()["errors"][0]["field"] == "county"
        assert error["message"] == (
            "'653022' is not a county code of the 990100 catalogue (known: 990101, 990121, 990122)"
        )
        r = client.post(path, headers=admin, json={**body, "county": SHANYANG})
        assert r.status_code == 201, (path, r.text)
        assert SHANYANG in (r.json().get("county"), r.json().get("region"))


def test_the_token_command_refuses_a_county_the_catalogue_does_not_know(
    monkeypatch: pytest.MonkeyPatch, catalogue_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("QW_DATABASE_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    command = ["alerts", "token", "create", "--name", "officer", "--role", "duty_officer"]
    for catalogue, county in ((None, "65302"), (None, "653099"), (catalogue_file, AKTO)):
        if catalogue is None:
            monkeypatch.delenv("QW_CATALOGUE_PATH", raising=False)
        else:
            monkeypatch.setenv("QW_CATALOGUE_PATH", str(catalogue))
        result = CliRunner().invoke(main, [*command, "--county", county])
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"Error: --county: '{county}' is not a county code of the ")
        assert result.output.count("\n") == 1, result.output
    assert not (tmp_path / "alerts.db").exists()  # refused before anything was touched
    monkeypatch.delenv("QW_CATALOGUE_PATH")
    result = CliRunner().invoke(main, ["alerts", "token", "create", "--name", " ", "--role", "inspector"])
    assert (result.exit_code, result.output) == (1, "Error: --name: must not be empty\n")
    result = CliRunner().invoke(main, [*command, "--county", AKTO])  # a Kizilsu county, Kizilsu's catalogue
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.mark.integration
def test_the_cell_weeks_consumer_records_the_catalogues_counties_and_refuses_kizilsus(
    broker: EmbeddedBroker,
    runtime: Runtime,
    client: TestClient,
    token: Callable[..., dict[str, str]],
) -> None:
    tag = uuid.uuid4().hex[:8]
    runtime.settings = runtime.settings.model_copy(
        update={
            "bootstrap_servers": broker.bootstrap,
            "topic_prefix": f"t{tag}.",
            "session_timeout_ms": 6000,
            "fetch_max_wait_ms": 100,
        }
    )
    ours = [_cell(county["code"], "textiles", week, 30, week + 1) for county in COUNTIES for week in range(2)]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for cell in [*ours, _cell(AKTO, "textiles", 0, 30, 1)]:
        producer.send(runtime.settings.cell_weeks, key=cell.industry.encode(), value=encode_cell_week(cell))
    producer.flush()
    producer.close()

    stop = threading.Event()
    timer = threading.Timer(60, stop.set)
    timer.start()
    consumer = make_stats_consumer(runtime, group_id=f"g{tag}")
    try:
        seen = run_stats_consumer(
            runtime=runtime, stop=stop, consumer=consumer, until=lambda n: n >= len(ours) + 1
        )
    finally:
        timer.cancel()
        consumer.close()
    assert seen == len(ours) + 1

    admin = token("admin")
    g = client.get("/api/stats/grid?weeks=4", headers=admin).json()
    cells = {(c["county"], c["industry"]): c for c in g["cells"]}
    assert AKTO not in g["counties"] and (AKTO, "textiles") not in cells
    for county in COUNTIES:
        ours_cell = cells[(county["code"], "textiles")]
        assert (ours_cell["tested"], ours_cell["failed"]) == (60, 3)
    rows = client.get("/api/stats/pass-rates?by=county", headers=admin).json()["rows"]
    assert sorted((r["county"], r["tested"]) for r in rows) == [(c["code"], 60) for c in COUNTIES]


def _patrol(n: int, region: str = SHANYANG) -> dict[str, Any]:
    first = f"91990121MA7E0000{n}"
    return {
        "id": f"HUBIN-P-{n}",
        "patrolled_at": datetime.now(ZONE).replace(microsecond=0).isoformat(),
        "region": region,
        "industry": "food_processing",
        "enterprise_id": first + uscc_check_char(first),
        "inspector_id": "insp-1",
        "hazard": "aflatoxin_b1",
        "severity": "general",
        "action": "rectified_on_site",
        "note": "",
    }


def test_serve_gives_ingest_the_alert_services_catalogue(
    monkeypatch: pytest.MonkeyPatch, catalogue_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(catalogue_file))
    runtime = build_runtime(load_settings(database_url=f"sqlite:///{tmp_path / 'alerts.db'}", consume=False))
    app = create_platform_app(
        runtime=runtime,
        settings=IngestSettings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}"),
        stream_settings=StreamSettings(bootstrap_servers="127.0.0.1:1"),
        background=False,
        relay=False,
    )
    tokens = {}
    with runtime.session() as s:
        for role, county in (("admin", None), ("inspector", SHANYANG)):
            _, clear = create_token(
                s, name=role, role=role, county=county, now=SystemClock().now(), catalogue=runtime.catalogue
            )
            tokens[role] = {"Authorization": f"Bearer {clear}"}
        s.commit()
    with TestClient(app, raise_server_exceptions=False) as client:
        cat = client.get("/api/stats/catalogue", headers=tokens["admin"]).json()
        assert [c["code"] for c in cat["counties"]] == [c["code"] for c in COUNTIES]
        # the inspector of a county of the catalogue pushes its records; a Kizilsu county is refused
        r = client.post("/api/v1/patrol-reports", json=_patrol(1), headers=tokens["inspector"])
        assert r.status_code == 201, r.text
        r = client.post("/api/v1/patrol-reports", json=_patrol(2, AKTO), headers=tokens["admin"])
        assert r.status_code == 422 and r.json()["detail"]["errors"][0]["field"] == "region"


def _unusable(tmp_path: Path) -> list[tuple[str, str]]:
    """(file, the reason its loading gives) for a missing file, bad YAML and a catalogue that is invalid."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("regions: [\n  - code: 1\n", encoding="utf-8")
    twice = tmp_path / "twice.yaml"  # Hubin with two counties of one code
    data = yaml.safe_load(packaged.DEFAULT_PATH.read_text(encoding="utf-8"))
    data["prefecture"], data["regions"] = HUBIN, [COUNTIES[0], dict(COUNTIES[1], code=COUNTIES[0]["code"])]
    twice.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return [
        (str(tmp_path / "missing.yaml"), f"cannot read catalogue {tmp_path / 'missing.yaml'}: No such file"),
        (str(broken), f"catalogue {broken} is not valid YAML"),
        (str(twice), "regions[1].code"),
    ]


def test_a_catalogue_that_cannot_be_loaded_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for path, reason in _unusable(tmp_path):
        monkeypatch.setenv("QW_CATALOGUE_PATH", path)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        message = str(caught.value)
        assert message.startswith("invalid settings: QW_CATALOGUE_PATH: ")
        assert reason in message and "\n" not in message


def test_the_service_refuses_to_start_on_a_catalogue_it_cannot_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QW_DATABASE_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(tmp_path / "missing.yaml"))
    for command in (
        ["alerts", "token", "create", "--name", "a", "--role", "admin"],
        ["alerts", "serve"],
        ["serve"],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert result.output == (
            f"Error: invalid settings: QW_CATALOGUE_PATH: cannot read catalogue {tmp_path / 'missing.yaml'}: "
            "No such file or directory\n"
        )
    assert not (tmp_path / "alerts.db").exists()  # refused before anything was touched


def test_an_empty_variable_is_the_packaged_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_CATALOGUE_PATH", "")
    assert load_settings().catalogue_path is None
