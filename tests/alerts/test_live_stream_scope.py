"""The live stream (``GET /api/events``) under a real server: a county-scoped reader is told only
about what the API would let it read, incidents of several counties and notifications included."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from alerts.api import create_app

AKTO, ARTUX, WUQIA = "653022", "653001", "653024"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(routed, ingest, make_warning) -> Iterator[str]:  # type: ignore[no-untyped-def]
    ingest(make_warning(region=AKTO, level="red"), make_warning(region=ARTUX, level="yellow"))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(routed), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        thread.join(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _events_until(lines: Iterator[str], last: str) -> list[tuple[str, dict[str, object]]]:
    """The events read, up to and including the first of type ``last``."""
    got: list[tuple[str, dict[str, object]]] = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            got.append((kind, json.loads(line[6:])))
            if kind == last:
                return got
    return got


def _alert(base: str, headers: dict[str, str], county: str) -> int:
    items = httpx.get(f"{base}/api/alerts", headers=headers, params={"county": county}).json()["items"]
    return int(items[0]["id"])


def test_a_county_reader_is_not_told_of_other_counties_incidents_nor_notifications(
    backend, server, routed, token, make_warning, ingest
):  # type: ignore[no-untyped-def]
    if backend == "postgresql":
        # the PostgreSQL fixture runs every session on one connection inside one rolled-back
        # transaction, so the server's thread and this one would nest savepoints into each other;
        # who may read an incident is the same query on both databases, and test_alerts_api runs
        # it on PostgreSQL
        pytest.skip("a real server thread cannot share the PostgreSQL fixture's one connection")
    admin = token("admin")
    akto, artux = _alert(server, admin, AKTO), _alert(server, admin, ARTUX)
    wuqia = token("inspector", county=WUQIA)["Authorization"].split()[1]
    akto_reader = token("inspector", county=AKTO)["Authorization"].split()[1]
    with (
        httpx.stream("GET", f"{server}/api/events", params={"access_token": wuqia}, timeout=10) as third,
        httpx.stream("GET", f"{server}/api/events", params={"access_token": akto_reader}, timeout=10) as own,
    ):
        third_lines, own_lines = third.iter_lines(), own.iter_lines()
        assert next(third_lines) == ": connected" and next(own_lines) == ": connected"
        r = httpx.post(
            f"{server}/api/incidents",
            headers=admin,
            json={"title": "two counties", "alert_ids": [akto, artux]},
        )
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        r = httpx.post(f"{server}/api/incidents/{iid}/state", headers=admin, json={"state": "investigating"})
        assert r.status_code == 200, r.text
        routed.deliver()  # the Akto and Artux alerts' notifications go out
        # a prefecture-wide alert, which every county reads, closes what each stream is asked about
        ingest(make_warning(kind="industry", region=None, industry="textiles", detector="wide"))
        seen = _events_until(third_lines, "alert.created")
        told = _events_until(own_lines, "alert.created")
    assert [kind for kind, _ in seen] == ["alert.created"] and seen[0][1]["region"] is None
    kinds = [kind for kind, _ in told]
    assert kinds.count("incident.updated") == 2 and kinds[-1] == "alert.created"
    assert {data["id"] for kind, data in told if kind == "incident.updated"} == {iid}
    assert {data["alert_id"] for kind, data in told if kind == "notification.updated"} == {akto}
