"""Property-based run of the alert service API against its own OpenAPI schema: no input gives a 5xx.

Schemathesis generates path parameters, query strings and bodies for every operation from the schema
and calls the ASGI app in process with an admin token, so requests get past authentication into the
services. The store holds an alert, an incident with a task, a route and a silence, so generated ids
sometimes hit real rows. Examples are bounded per operation and derandomized (the same run each time).
``GET /api/events`` is left out: it is an endless stream (``test_alerts_api`` reads it under a real server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from alerts.api import create_app
from alerts.auth.models import Role
from alerts.auth.service import Principal
from alerts.db import make_engine, make_session_factory
from alerts.incident.service import add_task, open_incident
from alerts.runtime import Runtime
from alerts.settings import AlertSettings
from alerts.silence.service import create_silence

#: the app whose schema is generated from; each test points it at that test's runtime (views read
#: ``app.state.runtime`` per request), so one schema serves both backends
_app = create_app(
    Runtime(settings=AlertSettings(), session_factory=make_session_factory(make_engine("sqlite://")))
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app).exclude(path="/api/events")


@pytest.fixture
def admin(
    routed: Runtime,
    ingest: Callable[..., Any],
    make_warning: Callable[..., Any],
    token: Callable[..., dict[str, str]],
) -> Iterator[dict[str, str]]:
    """Seed the store, serve it from ``_app``, and give the admin's Authorization header."""
    [outcome] = ingest(make_warning(level="red"))
    now = routed.clock.now()
    officer = Principal(name="officer", role=Role.duty_officer)
    with routed.session() as s:
        incident = open_incident(s, title="fuzz", principal=officer, alert_ids=[outcome.alert_id], now=now)
        add_task(
            s,
            incident_id=incident.id,
            principal=officer,
            title="sample",
            owner="officer",
            due_at=now,
            now=now,
        )
        create_silence(
            s,
            principal=officer,
            region="653022",
            starts_at=now,
            ends_at=now.replace(year=now.year + 1),
            reason="fuzz",
            now=now,
            catalogue=routed.catalogue,
        )
        s.commit()
    previous = _app.state.runtime
    _app.state.runtime = routed
    yield token("admin")
    _app.state.runtime = previous


@pytest.mark.integration
@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_input_gives_a_server_error(case: schemathesis.Case[Any], admin: dict[str, str]) -> None:
    case.call_and_validate(headers=admin, checks=[not_a_server_error])


def test_nul_text_is_refused_naming_its_field(admin: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    with TestClient(_app) as client:
        body = client.post(
            "/api/tokens", headers=admin, json={"name": "x", "role": "admin", "county": "65\x00"}
        )
        query = client.get("/api/alerts", headers=admin, params={"county": "\x00"})
        nested = client.post(
            "/api/incidents", headers=admin, json={"title": "t", "alert_ids": [1], "extra": [{"k\x00": 1}]}
        )
    assert body.status_code == 422 and body.json()["error"]["field"] == "county"
    assert "NUL" in body.json()["error"]["message"]
    assert query.status_code == 422 and query.json()["error"]["field"] == "query.county"
    assert nested.status_code == 422 and nested.json()["error"]["field"] == "extra.0.k\x00"


@pytest.mark.parametrize(
    "path", ["/api/alerts/2147483648", "/api/incidents/0", "/api/alerts?offset=2147483648"]
)
def test_ids_and_offsets_beyond_the_store_are_refused(admin: dict[str, str], path: str) -> None:
    from fastapi.testclient import TestClient

    with TestClient(_app) as client:
        response = client.get(path, headers=admin)
    assert response.status_code == 422
    assert response.json()["error"]["field"] in {"path.alert_id", "path.incident_id", "query.offset"}
