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


def test_a_warning_already_in_an_open_incident_is_not_put_in_a_second_one(seeded, client, token, clock):
    admin = token("admin")
    akto, artux = _alert(client, admin, AKTO), _alert(client, admin, ARTUX)
    first = client.post("/api/incidents", headers=admin, json={"title": "first", "alert_ids": [akto]}).json()
    r = client.post("/api/incidents", headers=admin, json={"title": "again", "alert_ids": [artux, akto]})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["field"] == "alert_ids"
    assert f"alert {akto} is already in incident {first['id']} (reported)" in r.json()["error"]["message"]
    assert client.get("/api/incidents", headers=admin).json()["total"] == 1
    second = client.post(
        "/api/incidents", headers=admin, json={"title": "artux", "alert_ids": [artux]}
    ).json()
    r = client.post(f"/api/incidents/{second['id']}/alerts", headers=admin, json={"alert_id": akto})
    assert r.status_code == 409 and r.json()["error"]["field"] == "alert_id"
    assert client.get(f"/api/incidents/{second['id']}", headers=admin).json()["alert_ids"] == [artux]
    # linking it again where it already is changes nothing and is not refused
    r = client.post(f"/api/incidents/{first['id']}/alerts", headers=admin, json={"alert_id": akto})
    assert r.status_code == 200 and r.json()["alert_ids"] == [akto]
    # the alert says which incidents it is in
    detail = client.get(f"/api/alerts/{akto}", headers=admin).json()
    assert detail["incidents"] == [{"id": first["id"], "title": "first", "state": "reported"}]
    # once that incident is closed, a new one may take the warning (it fired again, say)
    _to_resolved(client, admin, first["id"])
    client.post(
        f"/api/incidents/{first['id']}/state", headers=admin, json={"state": "closed", "summary": "ok"}
    )
    r = client.post("/api/incidents", headers=admin, json={"title": "relapse", "alert_ids": [akto]})
    assert r.status_code == 201, r.text
    incidents = client.get(f"/api/alerts/{akto}", headers=admin).json()["incidents"]
    assert [(i["id"], i["state"]) for i in incidents] == [
        (first["id"], "closed"),
        (r.json()["id"], "reported"),
    ]
