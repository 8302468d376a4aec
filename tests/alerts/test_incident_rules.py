"""What an emergency response team relies on when it closes incidents, links warnings and reads
the audit trail: no task left open behind a closed incident, one open incident per warning, and an
audit entry that says what was added."""

from __future__ import annotations

from datetime import timedelta

import pytest

AKTO, ARTUX, WUQIA = "653022", "653001", "653024"


@pytest.fixture
def seeded(routed, ingest, make_warning):  # type: ignore[no-untyped-def]
    ingest(
        make_warning(region=AKTO, level="red"),
        make_warning(region=ARTUX, level="yellow"),
        make_warning(region=WUQIA, level="orange"),
    )
    return routed


def _alert(client, headers, region):  # type: ignore[no-untyped-def]
    items = client.get("/api/alerts", headers=headers, params={"county": region}).json()["items"]
    return next(a["id"] for a in items if a["region"] == region)


def _to_resolved(client, headers, iid):  # type: ignore[no-untyped-def]
    for state in ("investigating", "controlled", "resolved"):
        r = client.post(f"/api/incidents/{iid}/state", headers=headers, json={"state": state})
        assert r.status_code == 200, r.text


def test_an_incident_is_not_closed_while_a_task_is_open(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    aid = _alert(client, officer, AKTO)
    iid = client.post("/api/incidents", headers=officer, json={"title": "lead", "alert_ids": [aid]}).json()[
        "id"
    ]
    due = (clock.now() + timedelta(hours=4)).isoformat()
    tasks = [
        client.post(
            f"/api/incidents/{iid}/tasks",
            headers=officer,
            json={"title": title, "owner": "li", "due_at": due},
        ).json()["id"]
        for title in ("recall", "re-inspect")
    ]
    client.post(f"/api/incidents/{iid}/tasks/{tasks[0]}/done", headers=officer)
    _to_resolved(client, officer, iid)
    before = client.get(f"/api/incidents/{iid}", headers=officer).json()
    r = client.post(
        f"/api/incidents/{iid}/state", headers=officer, json={"state": "closed", "summary": "done"}
    )
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["field"] == "tasks"
    assert f"#{tasks[1]} 're-inspect'" in error["message"] and "recall" not in error["message"]
    assert client.get(f"/api/incidents/{iid}", headers=officer).json() == before
    client.post(f"/api/incidents/{iid}/tasks/{tasks[1]}/done", headers=officer)
    r = client.post(
        f"/api/incidents/{iid}/state", headers=officer, json={"state": "closed", "summary": "done"}
    )
    assert r.status_code == 200 and r.json()["state"] == "closed"
