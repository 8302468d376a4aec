"""What an emergency response team relies on when it closes incidents, links warnings and reads
the audit trail: no task left open behind a closed incident, one open incident per warning, and an
audit entry that says what was added."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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


def _audit(client, admin, iid, action):  # type: ignore[no-untyped-def]
    params = {"entity": "incident", "entity_id": str(iid)}
    entries = client.get("/api/audit", headers=admin, params=params).json()
    return [e for e in reversed(entries) if e["action"] == action]


def test_the_audit_says_which_member_task_link_or_alert_an_incident_action_was_about(
    seeded, client, token, clock
):
    admin = token("admin")
    officer = token("duty_officer", name="alice")
    akto, wuqia = _alert(client, officer, AKTO), _alert(client, officer, WUQIA)
    iid = client.post("/api/incidents", headers=officer, json={"title": "lead", "alert_ids": [akto]}).json()[
        "id"
    ]
    [opened] = _audit(client, admin, iid, "incident.open")
    assert opened["after"]["alert_ids"] == [akto]

    client.post(f"/api/incidents/{iid}/members", headers=officer, json={"name": "zhao"})
    client.post(f"/api/incidents/{iid}/members", headers=officer, json={"name": "zhao", "role": "lab"})
    added, changed = _audit(client, admin, iid, "incident.member")
    assert added["before"]["member"] is None and added["after"]["member"] == {
        "name": "zhao",
        "role": "member",
    }
    assert changed["before"]["member"] == {"name": "zhao", "role": "member"}
    assert changed["after"]["member"] == {"name": "zhao", "role": "lab"}

    due = clock.now() + timedelta(hours=4)
    tid = client.post(
        f"/api/incidents/{iid}/tasks",
        headers=officer,
        json={"title": "recall", "owner": "li", "due_at": due.isoformat()},
    ).json()["id"]
    [task] = _audit(client, admin, iid, "incident.task")
    assert task["before"]["task"] is None
    assert task["after"]["task"] == {
        "id": tid,
        "title": "recall",
        "owner": "li",
        "due_at": due.isoformat(),
        "done": False,
    }
    client.post(f"/api/incidents/{iid}/tasks/{tid}/done", headers=officer)
    [done] = _audit(client, admin, iid, "incident.task_done")
    assert done["before"]["task"]["done"] is False and done["after"]["task"]["done"] is True
    assert done["after"]["task"]["id"] == tid

    client.post(f"/api/incidents/{iid}/links", headers=officer, json={"kind": "product", "value": "apricots"})
    [linked] = _audit(client, admin, iid, "incident.link")
    assert linked["after"]["link"] == {"kind": "product", "value": "apricots"}

    client.post(f"/api/incidents/{iid}/alerts", headers=admin, json={"alert_id": wuqia})
    [alert] = _audit(client, admin, iid, "incident.link_alert")
    assert alert["after"]["alert_id"] == wuqia
    assert alert["before"]["region"] == AKTO and alert["before"]["level"] == "red"


def test_an_incident_of_two_counties_is_not_shown_to_a_third(seeded, client, token, make_warning, ingest):
    admin = token("admin")
    akto, artux = _alert(client, admin, AKTO), _alert(client, admin, ARTUX)
    both = client.post(
        "/api/incidents", headers=admin, json={"title": "two", "alert_ids": [akto, artux]}
    ).json()
    assert both["region"] is None
    ingest(make_warning(kind="industry", region=None, industry="textiles", level="orange", detector="ind"))
    items = client.get("/api/alerts", headers=admin, params={"kind": "industry"}).json()["items"]
    wide = client.post(
        "/api/incidents", headers=admin, json={"title": "textiles", "alert_ids": [items[0]["id"]]}
    ).json()
    wuqia = token("responder", county=WUQIA)
    listed = client.get("/api/incidents", headers=wuqia).json()
    assert [i["id"] for i in listed["items"]] == [wide["id"]] and listed["total"] == 1
    r = client.get(f"/api/incidents/{both['id']}", headers=wuqia)
    assert r.status_code == 403 and r.json()["error"]["field"] == "county"
    assert AKTO in r.json()["error"]["message"] and ARTUX in r.json()["error"]["message"]
    assert client.get(f"/api/incidents/{wide['id']}", headers=wuqia).status_code == 200
    for county in (AKTO, ARTUX):
        officer = token("responder", county=county)
        assert client.get(f"/api/incidents/{both['id']}", headers=officer).status_code == 200
        assert both["id"] in [i["id"] for i in client.get("/api/incidents", headers=officer).json()["items"]]


def test_an_alert_lists_only_the_incidents_its_reader_may_see(seeded, client, token, make_warning, ingest):
    admin = token("admin")
    ingest(make_warning(kind="industry", region=None, industry="textiles", level="orange", detector="ind"))
    [wide] = client.get("/api/alerts", headers=admin, params={"kind": "industry"}).json()["items"]
    akto = _alert(client, admin, AKTO)
    iid = client.post(
        "/api/incidents", headers=admin, json={"title": "Akto textiles", "alert_ids": [akto, wide["id"]]}
    ).json()["id"]
    assert [i["id"] for i in client.get(f"/api/alerts/{wide['id']}", headers=admin).json()["incidents"]] == [
        iid
    ]
    akto_officer = token("inspector", county=AKTO)
    assert [
        i["id"] for i in client.get(f"/api/alerts/{wide['id']}", headers=akto_officer).json()["incidents"]
    ] == [iid]
    wuqia = token("inspector", county=WUQIA)
    assert client.get(f"/api/alerts/{wide['id']}", headers=wuqia).json()["incidents"] == []


def test_the_audit_of_one_year_in_the_bureau_s_time(seeded, client, token, clock):
    shanghai = ZoneInfo("Asia/Shanghai")
    admin = token("admin")
    akto = _alert(client, admin, AKTO)
    clock.set(datetime(2025, 6, 1, 9, 0, tzinfo=shanghai))
    iid = client.post("/api/incidents", headers=admin, json={"title": "year", "alert_ids": [akto]}).json()[
        "id"
    ]
    # 31 December 2025 23:30 and 1 January 2026 00:30 in Kizilsu (both still 2025 in UTC)
    for when, state in (
        (datetime(2025, 12, 31, 23, 30, tzinfo=shanghai), "investigating"),
        (datetime(2026, 1, 1, 0, 30, tzinfo=shanghai), "controlled"),
    ):
        clock.set(when)
        assert (
            client.post(f"/api/incidents/{iid}/state", headers=admin, json={"state": state}).status_code
            == 200
        )
    params = {
        "entity": "incident",
        "since": "2025-01-01T00:00:00+08:00",
        "until": "2026-01-01T00:00:00+08:00",
    }
    r = client.get("/api/audit", headers=admin, params=params)
    assert r.status_code == 200, r.text
    assert [e["after"]["state"] for e in r.json()] == ["investigating", "reported"]
    params |= {"since": "2026-01-01T00:00:00+08:00", "until": "2027-01-01T00:00:00+08:00"}
    assert [e["after"]["state"] for e in client.get("/api/audit", headers=admin, params=params).json()] == [
        "controlled"
    ]
    r = client.get("/api/audit", headers=admin, params={"since": "2026-01-01"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.since"


def test_an_incident_follows_its_alerts_level_and_their_firing_again(
    seeded, client, token, clock, ingest, make_warning
):
    admin = token("admin")
    artux, wuqia = _alert(client, admin, ARTUX), _alert(client, admin, WUQIA)
    rising = client.post("/api/incidents", headers=admin, json={"title": "up", "alert_ids": [artux]}).json()
    assert rising["level"] == "yellow"
    ingest(make_warning(region=ARTUX, level="red", week=1))
    inc = client.get(f"/api/incidents/{rising['id']}", headers=admin).json()
    assert inc["level"] == "red" and inc["state"] == "reported"
    last = inc["timeline"][-1]
    assert (last["kind"], last["actor"]) == ("alert_changed", "system")
    assert last["data"] | {"summary": None} == {
        "alert_id": artux,
        "change": "level_raised",
        "from": "yellow",
        "to": "red",
        "summary": None,
        "state": "reported",
    }
    assert f"alert #{artux}" in last["text"] and "yellow -> red" in last["text"]
    [entry] = _audit(client, admin, rising["id"], "incident.alert_changed")
    assert entry["actor"] == "system"
    assert (entry["before"]["level"], entry["after"]["level"]) == ("yellow", "red")
    assert entry["after"]["alert"] == {"id": artux, "change": "level_raised", "from": "yellow", "to": "red"}

    # a resolved incident whose warning fires again: the team is told on its timeline and in the audit
    calm = client.post("/api/incidents", headers=admin, json={"title": "calm", "alert_ids": [wuqia]}).json()
    _to_resolved(client, admin, calm["id"])
    ingest(make_warning(region=WUQIA, level="orange", status="resolved", week=1))
    assert client.get(f"/api/incidents/{calm['id']}", headers=admin).json()["timeline"][-1]["kind"] == "state"
    ingest(make_warning(region=WUQIA, level="red", week=2))
    inc = client.get(f"/api/incidents/{calm['id']}", headers=admin).json()
    assert inc["state"] == "resolved" and inc["level"] == "red"
    last = inc["timeline"][-1]
    assert last["kind"] == "alert_changed" and last["data"]["change"] == "fired_again"
    assert (last["data"]["from"], last["data"]["to"], last["data"]["state"]) == ("orange", "red", "resolved")
    assert f"alert #{wuqia} fired again" in last["text"]
    [entry] = _audit(client, admin, calm["id"], "incident.alert_changed")
    assert entry["after"]["alert"]["change"] == "fired_again" and entry["before"]["level"] == "orange"

    # a closed incident is left as it was
    client.post(
        f"/api/incidents/{calm['id']}/state", headers=admin, json={"state": "closed", "summary": "ok"}
    )
    ingest(make_warning(region=WUQIA, level="red", status="resolved", week=3))
    closed = client.get(f"/api/incidents/{calm['id']}", headers=admin).json()
    ingest(make_warning(region=WUQIA, level="red", week=4))
    assert client.get(f"/api/incidents/{calm['id']}", headers=admin).json() == closed


def test_linking_another_county_s_alert_lets_that_county_see_the_incident(seeded, client, token):
    admin = token("admin")
    akto, artux = _alert(client, admin, AKTO), _alert(client, admin, ARTUX)
    iid = client.post("/api/incidents", headers=admin, json={"title": "akto", "alert_ids": [akto]}).json()[
        "id"
    ]
    r = client.post(f"/api/incidents/{iid}/alerts", headers=admin, json={"alert_id": artux})
    assert r.status_code == 200, r.text
    assert r.json()["region"] is None  # as if opened from both counties' alerts
    for county in (AKTO, ARTUX):
        reader = token("responder", county=county)
        assert client.get(f"/api/incidents/{iid}", headers=reader).status_code == 200
        assert iid in [i["id"] for i in client.get("/api/incidents", headers=reader).json()["items"]]
    officer = token("inspector", county=ARTUX)
    assert [i["id"] for i in client.get(f"/api/alerts/{artux}", headers=officer).json()["incidents"]] == [iid]
    wuqia = token("responder", county=WUQIA)
    assert client.get(f"/api/incidents/{iid}", headers=wuqia).status_code == 403
    assert client.get("/api/incidents", headers=wuqia).json()["total"] == 0
    [entry] = _audit(client, admin, iid, "incident.link_alert")
    assert (entry["before"]["region"], entry["after"]["region"]) == (AKTO, None)
