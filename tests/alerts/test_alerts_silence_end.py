"""What a silence held back once it no longer covers the alert: the team is told a still-firing alert
fired (once), not one that resolved or was acknowledged meanwhile; the silenced flag goes at the tick."""

from __future__ import annotations

import json
from datetime import timedelta

from silences import OFFICER, silence_wuqia
from sqlalchemy import select

from alerts.alert.models import Alert
from alerts.alert.service import acknowledge


def _alert(session, fp):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(Alert).where(Alert.fingerprint == fp))


def _told(sink, url="http://hooks.test/duty"):  # type: ignore[no-untyped-def]
    """The events the duty team's webhook received, in order."""
    return [json.loads(r.content)["qualitywatch"]["event"] for r in sink.requests if str(r.url) == url]


def test_an_alert_that_fired_under_a_silence_that_ran_out_is_told_once_it_ends(
    routed, ingest, make_warning, session, clock, sink
):
    s = silence_wuqia(session, clock, timedelta(hours=1))
    w = make_warning(region="653024", level="yellow")
    ingest(w)
    routed.tick()
    assert _told(sink) == [] and _alert(session, w.fingerprint).silenced_by_id == s.id
    clock.advance(timedelta(minutes=59))
    routed.tick()
    assert _told(sink) == []
    clock.advance(timedelta(minutes=1))  # the silence runs out, the alert still fires
    routed.tick()
    assert _told(sink) == ["firing"]
    body = json.loads(sink.requests[-1].content)
    assert body["status"] == "firing" and body["qualitywatch"]["warning"]["id"] == w.id
    a = _alert(session, w.fingerprint)
    assert a.silenced_by_id is None
    # never twice: another tick, another emission of the same condition
    clock.advance(timedelta(seconds=5))
    routed.tick()
    ingest(make_warning(region="653024", level="yellow", week=1))
    routed.tick()
    assert _told(sink) == ["firing"]


def test_an_alert_that_fired_under_a_silence_lifted_early_is_told_at_the_next_tick(
    routed, client, token, ingest, make_warning, session, clock, sink
):
    s = silence_wuqia(session, clock, timedelta(hours=4))
    w = make_warning(region="653024", level="red")
    ingest(w)
    routed.tick()
    assert _told(sink) == []
    clock.advance(timedelta(minutes=10))
    r = client.delete(f"/api/silences/{s.id}", headers=token("duty_officer"))
    assert r.status_code == 200, r.text
    routed.tick()
    assert _told(sink) == ["firing"]
    clock.advance(timedelta(minutes=5))  # past the red timeout: escalated, not told it fired again
    routed.tick()
    assert _told(sink) == ["firing"] and _told(sink, "http://hooks.test/chief") == ["escalated"]


def test_an_alert_that_resolved_under_the_silence_is_not_told(
    routed, ingest, make_warning, session, clock, sink
):
    silence_wuqia(session, clock, timedelta(hours=1))
    ingest(make_warning(region="653024", level="yellow"))
    clock.advance(timedelta(minutes=30))
    ingest(make_warning(region="653024", level="yellow", status="resolved", week=1))
    clock.advance(timedelta(hours=1))
    routed.tick()
    assert sink.requests == []


def test_an_alert_acknowledged_under_the_silence_is_not_told(
    routed, ingest, make_warning, session, clock, sink
):
    silence_wuqia(session, clock, timedelta(hours=1))
    w = make_warning(region="653024", level="yellow")
    ingest(w)
    clock.advance(timedelta(minutes=30))
    a = _alert(session, w.fingerprint)
    acknowledge(session, alert_id=a.id, principal=OFFICER, disposition="verified", note=None, now=clock.now())
    session.commit()
    clock.advance(timedelta(hours=1))
    routed.tick()
    assert sink.requests == []


def test_the_silenced_flag_of_a_told_alert_goes_when_the_silence_runs_out(
    routed, ingest, make_warning, session, clock, sink
):
    w = make_warning(region="653024", level="yellow")
    ingest(w)
    routed.tick()
    assert _told(sink) == ["firing"]
    s = silence_wuqia(session, clock, timedelta(hours=1))
    assert _alert(session, w.fingerprint).silenced_by_id == s.id
    clock.advance(timedelta(hours=1))
    routed.tick()
    assert _alert(session, w.fingerprint).silenced_by_id is None
    assert _told(sink) == ["firing"]  # told before the silence: not told again
