"""The HTTP API: auth (401), roles and county scope (403), errors naming the field, filters and pages,
acknowledgement, incidents, audit, metrics, health and the live event stream."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta

import pytest

AKTO, WUQIA = "653022", "653024"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def seeded(routed, ingest, make_warning):  # type: ignore[no-untyped-def]
    ingest(
        make_warning(region=AKTO, level="red"),
        make_warning(region=WUQIA, level="yellow"),
        make_warning(
            kind="industry", region=None, industry="textiles", level="orange", detector="industry_rate"
        ),
    )
    return routed


def _ids(client, headers, **params):  # type: ignore[no-untyped-def]
    r = client.get("/api/alerts", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_missing_or_bad_token_is_401_and_says_why(client):
    r = client.get("/api/alerts")
    assert r.status_code == 401 and r.json()["error"]["field"] == "Authorization"
    assert "missing bearer token" in r.json()["error"]["message"]
    r = client.get("/api/alerts", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["error"]["message"]
    r = client.get("/api/alerts", headers={"Authorization": "Basic x"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


def test_revoked_token_is_refused(client, token):
    admin = token("admin")
    created = client.post("/api/tokens", headers=admin, json={"name": "temp", "role": "inspector"}).json()
    temp = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/me", headers=temp).status_code == 200
    assert client.delete(f"/api/tokens/{created['id']}", headers=admin).status_code == 200
    assert client.get("/api/me", headers=temp).status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("inspector", "post", "/api/alerts/1/ack", {"disposition": "verified"}),
        ("inspector", "post", "/api/silences", None),
        ("inspector", "get", "/api/incidents", None),
        ("responder", "post", "/api/alerts/1/ack", {"disposition": "verified"}),
        ("responder", "post", "/api/silences", None),
        ("duty_officer", "post", "/api/routes", {"name": "x", "team": "t"}),
        ("duty_officer", "put", "/api/receivers/x", {"kind": "webhook", "target": "http://x"}),
        ("duty_officer", "get", "/api/audit", None),
        ("duty_officer", "post", "/api/tokens", {"name": "x", "role": "admin"}),
        ("responder", "post", "/api/warnings", None),
    ],
)
def test_roles_are_refused_what_they_may_not_do(seeded, client, token, role, method, path, body):
    r = client.request(method, path, headers=token(role), json=body)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["field"] == "role" and role in r.json()["error"]["message"]


def test_county_scope_limits_what_is_seen_and_done(seeded, client, token):
    akto = token("duty_officer", county=AKTO)
    page = _ids(client, akto)
    regions = {a["region"] for a in page["items"]}
    assert regions == {AKTO, None}  # its county, and prefecture-wide alerts to read
    everything = _ids(client, token("admin"))
    wuqia_alert = next(a for a in everything["items"] if a["region"] == WUQIA)
    industry_alert = next(a for a in everything["items"] if a["region"] is None)
    r = client.get(f"/api/alerts/{wuqia_alert['id']}", headers=akto)
    assert (
        r.status_code == 403
        and r.json()["error"]["field"] == "county"
        and WUQIA in r.json()["error"]["message"]
    )
    r = client.post(f"/api/alerts/{wuqia_alert['id']}/ack", headers=akto, json={"disposition": "handled"})
    assert r.status_code == 403
    r = client.post(f"/api/alerts/{industry_alert['id']}/ack", headers=akto, json={"disposition": "handled"})
    assert r.status_code == 403 and "whole prefecture" in r.json()["error"]["message"]
    r = client.post("/api/incidents", headers=akto, json={"title": "x", "alert_ids": [wuqia_alert["id"]]})
    assert r.status_code == 403
    now = "2026-03-02T00:00:00+00:00"
    r = client.post(
        "/api/silences",
        headers=akto,
        json={"county": WUQIA, "starts_at": now, "ends_at": "2026-03-03T00:00:00+00:00", "reason": "x"},
    )
    assert r.status_code == 403
    own = next(a for a in page["items"] if a["region"] == AKTO)
    assert (
        client.post(
            f"/api/alerts/{own['id']}/ack", headers=akto, json={"disposition": "verified"}
        ).status_code
        == 200
    )


def test_a_county_officer_lists_the_silences_of_its_county_and_prefecture_wide_ones_only(client, token):
    admin, officer = token("admin"), token("duty_officer", county=AKTO)
    body = {"starts_at": "2026-03-02T00:00:00+00:00", "ends_at": "2026-03-03T00:00:00+00:00"}
    for county, reason in ((AKTO, "akto lab"), (WUQIA, "wuqia lab"), (None, "prefecture drill")):
        r = client.post("/api/silences", headers=admin, json={**body, "county": county, "reason": reason})
        assert r.status_code == 201, r.text
    for active in (False, True):
        params = {"active": str(active).lower()}
        akto = client.get("/api/silences", headers=officer, params=params)
        assert akto.status_code == 200, akto.text
        assert sorted(s["reason"] for s in akto.json()) == ["akto lab", "prefecture drill"]
        everyone = client.get("/api/silences", headers=admin, params=params).json()
        assert sorted(s["reason"] for s in everyone) == ["akto lab", "prefecture drill", "wuqia lab"]


def test_filters_and_pagination(seeded, client, token):
    h = token("inspector")
    assert _ids(client, h)["total"] == 3
    assert [a["level"] for a in _ids(client, h, level="red")["items"]] == ["red"]
    assert [a["kind"] for a in _ids(client, h, kind="industry")["items"]] == ["industry"]
    assert [a["region"] for a in _ids(client, h, county=WUQIA)["items"]] == [WUQIA]
    assert _ids(client, h, industry="textiles")["total"] == 1
    assert _ids(client, h, state="firing")["total"] == 3
    assert _ids(client, h, since="2026-03-01T00:00:00+00:00", until="2026-03-03T00:00:00+00:00")["total"] == 3
    assert _ids(client, h, since="2026-03-03T00:00:00+00:00")["total"] == 0
    first = _ids(client, h, limit=2)
    second = _ids(client, h, limit=2, offset=2)
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and first["total"] == 3
    assert {a["id"] for a in first["items"]}.isdisjoint({a["id"] for a in second["items"]})


def test_a_year_s_alerts_are_those_active_during_it(routed, client, token, ingest, make_warning):
    from datetime import UTC, datetime

    def span(detector, first, last):  # type: ignore[no-untyped-def]
        ingest(
            make_warning(detector=detector, raised_at=first, level="yellow"),
            make_warning(detector=detector, raised_at=last, level="orange"),
        )

    span("across", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))  # into the next year
    span("before", datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC))
    span("after", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))  # from `until` on
    span("inside", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    span(
        "ending", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    )  # last seen at `since`
    h = token("inspector")
    year = _ids(client, h, since="2025-01-01T00:00:00+00:00", until="2026-01-01T00:00:00+00:00", limit=500)
    assert sorted(a["detector"] for a in year["items"]) == ["across", "ending", "inside"]
    assert year["total"] == 3


def test_errors_name_the_field_and_the_reason(seeded, client, token):
    h = token("duty_officer")
    r = client.get("/api/alerts", headers=h, params={"level": "purple"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.level"
    r = client.post("/api/alerts/1/ack", headers=h, json={"disposition": "maybe"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "disposition"
    r = client.get("/api/alerts/999999", headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "alert_id"
    r = client.post(
        "/api/silences",
        headers=h,
        json={
            "starts_at": "2026-03-02T10:00:00+00:00",
            "ends_at": "2026-03-02T09:00:00+00:00",
            "reason": "x",
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "ends_at"


def test_acknowledge_comment_assign_and_the_audit_trail(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    clock.advance(timedelta(minutes=4))
    r = client.post(
        f"/api/alerts/{aid}/ack", headers=officer, json={"disposition": "verified", "note": "lab called"}
    )
    assert (
        r.status_code == 200
        and r.json()["state"] == "acknowledged"
        and r.json()["acknowledged_by"] == "alice"
    )
    r = client.post(f"/api/alerts/{aid}/ack", headers=officer, json={"disposition": "verified"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
    assert (
        client.post(f"/api/alerts/{aid}/comments", headers=officer, json={"body": "sent a team"}).status_code
        == 201
    )
    assert (
        client.post(f"/api/alerts/{aid}/assign", headers=officer, json={"assignee": "bob"}).json()["assignee"]
        == "bob"
    )
    detail = client.get(f"/api/alerts/{aid}", headers=officer).json()
    assert [c["body"] for c in detail["comments"]] == ["lab called", "sent a team"]
    assert [d["stage"] for d in detail["decisions"]][-1] == "acknowledge"
    audit = client.get(
        "/api/audit", headers=token("admin"), params={"entity": "alert", "entity_id": str(aid)}
    ).json()
    actions = [e["action"] for e in audit]
    assert actions == ["alert.assign", "alert.comment", "alert.acknowledge"]
    ack = audit[-1]
    assert (
        ack["actor"] == "alice"
        and ack["before"]["state"] == "firing"
        and ack["after"]["state"] == "acknowledged"
    )
    assert ack["after"]["disposition"] == "verified"
    metrics = client.get("/metrics").text
    assert 'qw_time_to_acknowledge_seconds_count{level="red"} 1.0' in metrics


def test_incident_lifecycle_over_http(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    responder = token("responder", name="bob")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    r = client.post(
        "/api/incidents",
        headers=officer,
        json={"title": "Aflatoxin in Akto", "alert_ids": [aid], "commander": "bob"},
    )
    assert r.status_code == 201, r.text
    inc = r.json()
    iid = inc["id"]
    assert inc["state"] == "reported" and inc["level"] == "red" and inc["region"] == AKTO
    assert inc["alert_ids"] == [aid] and {"name": "bob", "role": "commander"} in inc["members"]
    r = client.post(f"/api/incidents/{iid}/state", headers=responder, json={"state": "controlled"})
    assert r.status_code == 409 and "from reported to controlled" in r.json()["error"]["message"]
    due = (clock.now() + timedelta(hours=4)).isoformat()
    r = client.post(
        f"/api/incidents/{iid}/tasks",
        headers=responder,
        json={"title": "seal batch", "owner": "carol", "due_at": due},
    )
    assert r.status_code == 201
    tid = r.json()["id"]
    assert (
        client.post(
            f"/api/incidents/{iid}/members", headers=responder, json={"name": "carol", "role": "inspector"}
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/incidents/{iid}/links",
            headers=responder,
            json={"kind": "enterprise", "value": "91653022MA78XXXX1K"},
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/incidents/{iid}/links",
            headers=responder,
            json={"kind": "product", "value": "dried apricots"},
        ).status_code
        == 200
    )
    for state in ("investigating", "controlled", "resolved"):
        assert (
            client.post(f"/api/incidents/{iid}/state", headers=responder, json={"state": state}).status_code
            == 200
        )
    assert client.post(f"/api/incidents/{iid}/tasks/{tid}/done", headers=responder).json()["done"] is True
    r = client.post(f"/api/incidents/{iid}/state", headers=responder, json={"state": "closed"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "summary"
    r = client.post(
        f"/api/incidents/{iid}/state",
        headers=responder,
        json={"state": "closed", "summary": "batch recalled, supplier re-inspected"},
    )
    assert r.status_code == 200
    done = r.json()
    assert done["state"] == "closed" and done["closed_at"] and done["products"] == ["dried apricots"]
    assert done["enterprises"] == ["91653022MA78XXXX1K"]
    kinds = [e["kind"] for e in done["timeline"]]
    assert kinds[:3] == ["opened", "alert", "commander"] and kinds.count("state") == 4 and "task" in kinds
    r = client.post(
        f"/api/incidents/{iid}/tasks", headers=responder, json={"title": "x", "owner": "y", "due_at": due}
    )
    assert r.status_code == 409
    assert client.get("/api/incidents", headers=responder, params={"state": "closed"}).json()["total"] == 1


def test_timeline_entries_carry_their_kind_and_data(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    alert = _ids(client, officer, level="red")["items"][0]
    aid = alert["id"]
    iid = client.post(
        "/api/incidents",
        headers=officer,
        json={"title": "Aflatoxin in Akto", "alert_ids": [aid], "commander": "bob"},
    ).json()["id"]
    # a due time given in Beijing time is kept as the instant, in UTC
    tid = client.post(
        f"/api/incidents/{iid}/tasks",
        headers=officer,
        json={"title": "seal batch", "owner": "carol", "due_at": "2026-03-03T09:30:00+08:00"},
    ).json()["id"]
    for path, body in (
        ("members", {"name": "李工", "role": "检验"}),
        ("links", {"kind": "enterprise", "value": "91653022MA78XXXX1K"}),
        ("state", {"state": "investigating", "note": "samples sent"}),
        ("state", {"state": "controlled"}),
        (f"tasks/{tid}/done", {}),
        ("commander", {"commander": "carol"}),
    ):
        r = client.post(f"/api/incidents/{iid}/{path}", headers=officer, json=body)
        assert r.status_code in (200, 201), r.text
    timeline = client.get(f"/api/incidents/{iid}", headers=officer).json()["timeline"]
    assert [(e["kind"], e["data"]) for e in timeline] == [
        ("opened", {"title": "Aflatoxin in Akto"}),
        ("alert", {"alert_id": aid, "summary": alert["summary"]}),
        ("commander", {"commander": "bob"}),
        (
            "task",
            {
                "task_id": tid,
                "title": "seal batch",
                "owner": "carol",
                "due_at": "2026-03-03T01:30:00+00:00",
                "done": False,
            },
        ),
        ("member", {"name": "李工", "role": "检验"}),
        ("link", {"kind": "enterprise", "value": "91653022MA78XXXX1K"}),
        ("state", {"from": "reported", "to": "investigating", "note": "samples sent"}),
        ("state", {"from": "investigating", "to": "controlled", "note": None}),
        ("task", {"task_id": tid, "title": "seal batch", "done": True}),
        ("commander", {"commander": "carol"}),
    ]
    # the English text stays beside the data, for the readers of text
    assert [e["text"] for e in timeline][3:9] == [
        f"task #{tid} 'seal batch' for carol, due 2026-03-03T09:30:00+08:00",
        "member 李工 (检验)",
        "linked enterprise 91653022MA78XXXX1K",
        "reported -> investigating: samples sent",
        "investigating -> controlled",
        f"task #{tid} done",
    ]
    assert all(e["actor"] == "alice" and e["at"] == clock.now().isoformat() for e in timeline)


def test_a_task_s_due_time_is_answered_in_utc_when_added_as_when_read(seeded, client, token):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    iid = client.post("/api/incidents", headers=officer, json={"title": "t", "alert_ids": [aid]}).json()["id"]
    body = {"title": "seal batch", "owner": "carol", "due_at": "2026-03-03T09:30:00+08:00"}
    added = client.post(f"/api/incidents/{iid}/tasks", headers=officer, json=body).json()
    read = client.get(f"/api/incidents/{iid}", headers=officer).json()["tasks"]
    assert added["due_at"] == read[0]["due_at"] == "2026-03-03T01:30:00+00:00"


def test_a_new_commander_takes_the_role_and_the_previous_one_stays_a_member(seeded, client, token):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    r = client.post(
        "/api/incidents",
        headers=officer,
        json={"title": "Lead in flour", "alert_ids": [aid], "commander": "bob"},
    )
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = client.post(
        f"/api/incidents/{iid}/members", headers=officer, json={"name": "carol", "role": "inspector"}
    )
    assert r.status_code == 201, r.text

    def roles(body):  # type: ignore[no-untyped-def]
        return {m["name"]: m["role"] for m in body["members"]}

    r = client.post(f"/api/incidents/{iid}/commander", headers=officer, json={"commander": "carol"})
    assert r.status_code == 200, r.text
    assert r.json()["commander"] == "carol" and roles(r.json()) == {"bob": "member", "carol": "commander"}
    r = client.post(f"/api/incidents/{iid}/commander", headers=officer, json={"commander": "dave"})
    assert roles(r.json()) == {"bob": "member", "carol": "member", "dave": "commander"}
    detail = client.get(f"/api/incidents/{iid}", headers=officer).json()
    assert detail["commander"] == "dave" and roles(detail) == roles(r.json())


def test_the_commander_is_not_appointed_nor_demoted_through_the_members_action(seeded, client, token):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    r = client.post(
        "/api/incidents",
        headers=officer,
        json={"title": "Lead in flour", "alert_ids": [aid], "commander": "bob"},
    )
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    before = client.get(f"/api/incidents/{iid}", headers=officer).json()
    # a second commander through the members action: refused, pointing to the commander action
    for role in ("commander", "Commander "):
        r = client.post(
            f"/api/incidents/{iid}/members", headers=officer, json={"name": "carol", "role": role}
        )
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["field"] == "role" and f"/api/incidents/{iid}/commander" in err["message"]
    # the current commander demoted through the members action: refused too
    r = client.post(
        f"/api/incidents/{iid}/members", headers=officer, json={"name": "bob", "role": "inspector"}
    )
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["field"] == "role" and "commander" in err["message"]
    assert f"/api/incidents/{iid}/commander" in err["message"]
    # nothing changed: one commander, the one the incident names
    after = client.get(f"/api/incidents/{iid}", headers=officer).json()
    assert after["commander"] == "bob" and after["members"] == before["members"] == [
        {"name": "bob", "role": "commander"}
    ]
    assert after["timeline"] == before["timeline"]
    # once another commander is appointed, the previous one is an ordinary member again
    r = client.post(f"/api/incidents/{iid}/commander", headers=officer, json={"commander": "carol"})
    assert r.status_code == 200, r.text
    r = client.post(
        f"/api/incidents/{iid}/members", headers=officer, json={"name": "bob", "role": "inspector"}
    )
    assert r.status_code == 201, r.text
    roles = {m["name"]: m["role"] for m in r.json()["members"]}
    assert r.json()["commander"] == "carol" and roles == {"bob": "inspector", "carol": "commander"}


def test_post_warning_health_and_metrics(routed, client, token, make_warning):
    w = make_warning(region=WUQIA, level="orange")
    r = client.post("/api/warnings", headers=token("admin"), json=w.model_dump(mode="json"))
    assert r.status_code == 202 and r.json()["change"] == "new"
    first = r.json()["alert_id"]
    r = client.post("/api/warnings", headers=token("admin"), json=w.model_dump(mode="json"))
    assert r.json()["change"] == "duplicate"
    assert first is not None and r.json()["alert_id"] == first  # names the alert that holds it
    r = client.post("/api/warnings", headers=token("admin"), json={"id": "x"})
    assert r.status_code == 422 and r.json()["errors"]
    assert client.get("/healthz").json() == {"status": "ok"}
    text = client.get("/metrics").text
    assert 'qw_alerts{level="orange",state="firing"} 1.0' in text
    assert 'qw_notifications_total{receiver="duty-hook",result="sent"} 1.0' in text


def test_live_stream_carries_alert_changes_to_the_right_county(seeded, runtime, token, make_warning):
    """Runs the app under a real server so the stream and a change happen concurrently."""
    import httpx
    import uvicorn

    from alerts.api import create_app
    from alerts.pipeline import process_warning

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        wuqia = token("inspector", county=WUQIA)["Authorization"].split()[1]
        got: list[dict[str, object]] = []
        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/api/events", params={"access_token": wuqia}, timeout=10
        ) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert next(lines) == ": connected"
            with runtime.session() as s:
                process_warning(
                    s,
                    warning=make_warning(region=AKTO, detector="x1"),
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                )
                process_warning(
                    s,
                    warning=make_warning(region=WUQIA, detector="x2"),
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                )
                s.commit()
            event = None
            for line in lines:
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    got.append({"event": event, **json.loads(line[6:])})
                    break
        assert got[0]["event"] == "alert.created" and got[0]["region"] == WUQIA  # Akto's change was not shown
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize(
    ("field", "update"),
    [
        ("id", {"id": "i" * 65}),
        ("fingerprint", {"fingerprint": "f" * 65}),
        ("detector", {"detector": "d" * 65}),
        ("scope.region", {"scope": {"region": "6" * 17}}),
        ("scope.enterprise_id", {"scope": {"region": "653022", "enterprise_id": "9" * 33}}),
    ],
)
def test_post_warning_refuses_what_the_store_cannot_hold_naming_the_field(
    routed, client, token, make_warning, field, update
):
    body = {**make_warning(region=WUQIA).model_dump(mode="json"), **update}
    r = client.post("/api/warnings", headers=token("admin"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and "at most" in r.json()["error"]["message"]
    assert client.get("/api/alerts", headers=token("admin")).json()["total"] == 0


def _closed_incident(client, officer, aid, due):  # type: ignore[no-untyped-def]
    iid = client.post("/api/incidents", headers=officer, json={"title": "lead", "alert_ids": [aid]}).json()[
        "id"
    ]
    tid = client.post(
        f"/api/incidents/{iid}/tasks", headers=officer, json={"title": "recall", "owner": "li", "due_at": due}
    ).json()["id"]
    for state in ("investigating", "controlled", "resolved"):
        assert (
            client.post(f"/api/incidents/{iid}/state", headers=officer, json={"state": state}).status_code
            == 200
        )
    assert client.post(f"/api/incidents/{iid}/tasks/{tid}/done", headers=officer).status_code == 200
    r = client.post(
        f"/api/incidents/{iid}/state", headers=officer, json={"state": "closed", "summary": "recalled"}
    )
    assert r.status_code == 200
    return iid, tid


def test_a_closed_incident_s_tasks_cannot_be_marked_done(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    iid, tid = _closed_incident(client, officer, aid, (clock.now() + timedelta(hours=4)).isoformat())
    before = client.get(f"/api/incidents/{iid}", headers=officer).json()
    r = client.post(f"/api/incidents/{iid}/tasks/{tid}/done", headers=token("responder"))
    assert r.status_code == 409 and "closed" in r.json()["error"]["message"]
    assert client.get(f"/api/incidents/{iid}", headers=officer).json() == before


def test_marking_a_task_done_twice_writes_the_timeline_once(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    iid = client.post("/api/incidents", headers=officer, json={"title": "lead", "alert_ids": [aid]}).json()[
        "id"
    ]
    due = (clock.now() + timedelta(hours=4)).isoformat()
    tid = client.post(
        f"/api/incidents/{iid}/tasks", headers=officer, json={"title": "recall", "owner": "li", "due_at": due}
    ).json()["id"]
    for _ in range(2):
        assert client.post(f"/api/incidents/{iid}/tasks/{tid}/done", headers=officer).json()["done"] is True
    timeline = client.get(f"/api/incidents/{iid}", headers=officer).json()["timeline"]
    assert [e["text"] for e in timeline].count(f"task #{tid} done") == 1


def test_closing_an_incident_audits_what_it_was_before(seeded, client, token, clock):
    officer = token("duty_officer", name="alice")
    aid = _ids(client, officer, level="red")["items"][0]["id"]
    iid, _ = _closed_incident(client, officer, aid, (clock.now() + timedelta(hours=4)).isoformat())
    entries = client.get("/api/audit", headers=token("admin"), params={"entity": "incident"}).json()
    items = entries["items"] if isinstance(entries, dict) else entries
    [close] = [e for e in items if e["action"] == "incident.state" and e["after"]["state"] == "closed"]
    assert close["entity_id"] == str(iid)
    assert close["before"]["state"] == "resolved"
    assert close["before"]["summary"] is None and close["before"]["closed_at"] is None
    assert close["after"]["summary"] == "recalled" and close["after"]["closed_at"]


#: valid ISO 8601 times with no UTC equivalent (year 10000, year 0): the store keeps UTC
BEYOND_UTC = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("when", BEYOND_UTC)
def test_times_beyond_the_utc_years_are_refused_naming_the_field(seeded, client, token, make_warning, when):
    admin = token("admin")
    aid = _ids(client, admin)["items"][0]["id"]
    iid = client.post("/api/incidents", headers=admin, json={"title": "t", "alert_ids": [aid]}).json()["id"]
    silence = {
        "starts_at": "2026-03-02T00:00:00+00:00",
        "ends_at": "2026-03-03T00:00:00+00:00",
        "reason": "x",
    }
    task = {"title": "t", "owner": "o"}
    cell = {
        "region": AKTO,
        "industry": "food_processing",
        "week_start": "2026-03-02T00:00:00+08:00",
        "week_end": "2026-03-09T00:00:00+08:00",
        "tested": 1,
        "failed": 0,
    }
    cells = {"cells": [{**cell, "week_end": when}]}
    warning = make_warning(region=WUQIA, level="blue").model_dump(mode="json")
    asks = [
        ("GET", "/api/alerts", {"params": {"since": when}}, "query.since"),
        ("GET", "/api/alerts", {"params": {"until": when}}, "query.until"),
        ("GET", "/api/stats/pass-rates", {"params": {"since": when}}, "query.since"),
        ("GET", "/api/stats/pass-rates", {"params": {"until": when}}, "query.until"),
        ("POST", "/api/silences", {"json": {**silence, "starts_at": when}}, "starts_at"),
        ("POST", "/api/silences", {"json": {**silence, "ends_at": when}}, "ends_at"),
        ("POST", f"/api/incidents/{iid}/tasks", {"json": {**task, "due_at": when}}, "due_at"),
        ("POST", "/api/stats/cell-weeks", {"json": cells}, "cells.0.week_end"),
        ("POST", "/api/warnings", {"json": {**warning, "raised_at": when}}, "raised_at"),
        ("POST", "/api/warnings", {"json": {**warning, "window_start": when}}, "window_start"),
    ]
    for method, path, kwargs, field in asks:
        r = client.request(method, path, headers=admin, **kwargs)
        assert r.status_code == 422, (path, field, r.text)
        error = r.json()["error"]
        assert error["field"] == field and "UTC" in error["message"], (path, error)
    assert _ids(client, admin)["total"] == 3


def test_body_errors_name_the_body_or_its_field(seeded, client, token):
    admin = token("admin")
    aid = _ids(client, admin)["items"][0]["id"]
    json_body = {**admin, "content-type": "application/json"}
    # a field that happens to be called "body" is named as such
    r = client.post(f"/api/alerts/{aid}/comments", headers=admin, json={"body": 5})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    assert "string" in r.json()["error"]["message"]
    # a missing body, one that is not an object, and JSON that does not parse name the body
    r = client.post(f"/api/alerts/{aid}/comments", headers=json_body, content=b"")
    assert r.status_code == 422 and r.json()["error"] == {
        "code": "invalid",
        "field": "body",
        "message": "a JSON body is required",
    }
    r = client.post("/api/silences", headers=admin, json=["x"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    r = client.post("/api/silences", headers=json_body, content=b'{"reason": ')
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    assert r.json()["error"]["message"].startswith("not valid JSON at character 11")
    # nested fields keep their path
    r = client.post("/api/stats/cell-weeks", headers=admin, json={"cells": [{"region": 1}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "cells.0.region"


def test_a_key_stored_by_a_concurrent_request_is_a_409_naming_the_key(client, token, runtime):
    """Another request inserts the same receiver just after this one looked it up (and found none)."""
    from sqlalchemy import event, text

    bind = runtime.session_factory.kw["bind"]
    rivals: list[str] = []

    def rival(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not rivals and "FROM receivers" in statement:
            rivals.append("rival")
            with bind.engine.connect() as other:
                other.execute(
                    text("INSERT INTO receivers (name, kind, target) VALUES ('rival', 'webhook', 'x')")
                )
                other.commit()

    admin = token("admin")
    body = {"kind": "webhook", "target": "http://hooks.test/duty"}
    event.listen(bind, "after_cursor_execute", rival)
    try:
        r = client.put("/api/receivers/rival", headers=admin, json=body)
        assert rivals == ["rival"]
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict" and r.json()["error"]["field"] == "name"
        assert "at the same time" in r.json()["error"]["message"]
        # what the other request stored is there to see
        assert "rival" in client.get("/api/receivers", headers=admin).text
    finally:
        event.remove(bind, "after_cursor_execute", rival)
        with bind.engine.connect() as other:  # the rival committed outside the test's transaction
            other.execute(text("DELETE FROM receivers WHERE name = 'rival'"))
            other.commit()


def test_every_422_lists_its_problem_in_errors(client, token):
    """The service's own refusals and the NUL check answer in the shape of a request that fails
    validation: ``error``, and ``errors`` listing the field and the reason."""
    admin = token("admin")
    r = client.post(
        "/api/silences",
        headers=admin,
        json={
            "starts_at": "2026-03-02T10:00:00+00:00",
            "ends_at": "2026-03-02T09:00:00+00:00",
            "reason": "x",
        },
    )
    assert r.status_code == 422
    assert r.json() == {
        "error": {"code": "invalid", "field": "ends_at", "message": "must be after starts_at"},
        "errors": [{"field": "ends_at", "reason": "must be after starts_at", "type": "invalid"}],
    }
    r = client.get("/api/alerts", headers=admin, params={"county": "\x00"})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "query.county", "reason": "must not contain NUL characters (U+0000)", "type": "invalid"}
    ]
    r = client.post("/api/tokens", headers=admin, json={"name": " ", "role": "inspector"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"


SILENCE = {"starts_at": "2026-03-02T00:00:00+00:00", "ends_at": "2026-03-03T00:00:00+00:00", "reason": "x"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/tokens", {"name": "typo", "role": "duty_officer", "county": "65302"}, "county"),
        ("/api/tokens", {"name": "typo", "role": "inspector", "county": "653099"}, "county"),
        ("/api/tokens", {"name": "typo", "role": "inspector", "county": ""}, "county"),
        ("/api/silences", {**SILENCE, "county": "65302"}, "county"),
        ("/api/silences", {**SILENCE, "county": AKTO, "industry": "textile"}, "industry"),
        ("/api/routes", {"name": "typo", "team": "t", "county": "653099"}, "county"),
        ("/api/routes", {"name": "typo", "team": "t", "county": AKTO, "industry": "food"}, "industry"),
    ],
)
def test_a_county_or_industry_the_catalogue_does_not_know_is_refused_naming_the_field(
    client, token, path, body, field
):
    """A typo would store a token whose holder sees nothing, or a silence or route that never matches."""
    admin = token("admin")
    audit = client.get("/api/audit", headers=admin).json()
    r = client.post(path, headers=admin, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and f"'{body[field]}'" in error["message"], error
    known = "653001, 653022, 653023, 653024" if field == "county" else "food_processing"
    assert known in error["message"]
    assert r.json()["errors"] == [{"field": field, "reason": error["message"], "type": "invalid"}]
    assert client.get("/api/audit", headers=admin).json() == audit  # nothing stored
    assert client.get("/api/silences", headers=admin).json() == []
    assert client.get("/api/routes", headers=admin).json() == []


@pytest.mark.parametrize(
    ("scope", "field", "known"),
    [
        ({"region": None, "industry": "food", "kind": "industry"}, "scope.industry", "food_processing"),
        ({"region": "653099"}, "scope.region", "653001, 653022, 653023, 653024"),
    ],
)
def test_a_posted_warning_about_a_county_or_industry_the_catalogue_does_not_know_is_refused(
    client, token, make_warning, scope, field, known
):
    admin = token("admin")
    w = make_warning(**scope).model_dump(mode="json")
    r = client.post("/api/warnings", headers=admin, json=w)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    value = scope.get("industry") or scope["region"]
    assert error["field"] == field and f"'{value}'" in error["message"] and known in error["message"], error
    assert client.get("/api/alerts", headers=admin).json()["total"] == 0


def test_a_county_and_industry_of_the_catalogue_are_taken(client, token):
    admin = token("admin")
    body = {"name": "wuqia", "role": "duty_officer", "county": WUQIA}
    r = client.post("/api/tokens", headers=admin, json=body)
    assert r.status_code == 201 and r.json()["county"] == WUQIA
    officer = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/api/me", headers=officer).json()["county"] == WUQIA
    r = client.post("/api/silences", headers=officer, json={**SILENCE, "industry": "textiles"})
    assert r.status_code == 201 and (r.json()["region"], r.json()["industry"]) == (WUQIA, "textiles")
    r = client.post(
        "/api/routes",
        headers=admin,
        json={"name": "akto-food", "team": "akto", "county": AKTO, "industry": "food_processing"},
    )
    assert r.status_code == 201 and (r.json()["county"], r.json()["industry"]) == (AKTO, "food_processing")
    r = client.post("/api/routes", headers=admin, json={"name": "all", "team": "duty"})
    assert r.status_code == 201 and (r.json()["county"], r.json()["industry"]) == (None, None)


def test_tokens_stored_before_counties_were_checked_are_left_as_they_are(client, runtime):
    """A token of a county the catalogue does not know, issued before, still signs in as before."""
    from alerts.auth.models import Token
    from alerts.auth.service import digest

    with runtime.session() as s:
        s.add(
            Token(
                name="old",
                digest=digest("old-token"),
                role="inspector",
                county="65302",
                created_at=runtime.clock.now(),
            )
        )
        s.commit()
    r = client.get("/api/me", headers={"Authorization": "Bearer old-token"})
    assert r.status_code == 200 and r.json()["county"] == "65302"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"county": "65302"}, "county"), ({"industry": "textile"}, "industry"), ({"county": "Akto"}, "county")],
)
def test_listing_alerts_of_a_county_or_industry_the_catalogue_does_not_know_is_refused(
    seeded, client, token, params, field
):
    # a typo answered "no alerts", which reads as "nothing is wrong there"
    r = client.get("/api/alerts", headers=token("duty_officer"), params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and "known:" in error["message"]
    assert _ids(client, token("duty_officer"), county=WUQIA)["total"] == 1


def test_the_alerts_a_new_silence_covers_are_shown_silenced_at_once(seeded, client, token):
    officer = token("duty_officer", county=AKTO)
    akto = _ids(client, officer, county=AKTO)["items"][0]
    assert akto["state"] == "firing" and akto["silenced_by_id"] is None
    # from the card: this alert's scope and its level and below; one starting later marks nothing yet
    scope = {"kind": "regional", "county": AKTO, "level": akto["level"]}
    later = {**SILENCE, "starts_at": "2026-03-02T06:00:00+00:00"}
    assert client.post("/api/silences", headers=officer, json={**scope, **later}).status_code == 201
    assert client.get(f"/api/alerts/{akto['id']}", headers=officer).json()["silenced_by_id"] is None
    r = client.post("/api/silences", headers=officer, json={**scope, **SILENCE})
    assert r.status_code == 201, r.text
    assert client.get(f"/api/alerts/{akto['id']}", headers=officer).json()["silenced_by_id"] == r.json()["id"]
    everyone = _ids(client, token("inspector"))["items"]
    assert [a["region"] for a in everyone if a["silenced_by_id"] is not None] == [AKTO]
