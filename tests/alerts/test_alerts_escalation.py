"""Escalation timers driven by a fake clock: per-level timeouts, tiers, acknowledgement stops them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from silences import OFFICER, silence_wuqia
from sqlalchemy import select

from alerts.alert.models import Alert
from alerts.alert.service import acknowledge, list_decisions
from alerts.escalation import tick
from alerts.notification.models import Notification
from alerts.silence.service import expire_silence


def _alert(session, fp):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(Alert).where(Alert.fingerprint == fp))


def _escalations(session, alert_id):  # type: ignore[no-untyped-def]
    return list(
        session.scalars(
            select(Notification).where(Notification.alert_id == alert_id, Notification.event == "escalated")
        )
    )


def test_red_alert_escalates_after_fifteen_minutes_to_the_next_tier(
    routed, ingest, make_warning, session, clock, settings
):
    w = make_warning(region="653024", level="red")
    ingest(w)
    clock.advance(timedelta(minutes=14, seconds=59))
    assert tick(session, now=clock.now(), settings=settings) == []
    clock.advance(timedelta(seconds=1))
    [aid] = tick(session, now=clock.now(), settings=settings)
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.tier == 1
    [n] = _escalations(session, aid)
    assert n.receiver == "chief-hook"
    reason = next(d for d in list_decisions(session, alert_id=aid) if d.stage == "escalate").reason
    assert "not acknowledged within 15 min at level red" in reason and "tier 0 -> 1" in reason
    # the next tier after another 15 minutes, then no further (two tiers configured)
    clock.advance(timedelta(minutes=15))
    assert tick(session, now=clock.now(), settings=settings) == [aid]
    session.commit()
    clock.advance(timedelta(hours=5))
    assert tick(session, now=clock.now(), settings=settings) == []
    assert _alert(session, w.fingerprint).tier == 2


def test_timeouts_follow_the_level(routed, ingest, make_warning, session, clock, settings):
    orange = make_warning(region="653024", level="orange")
    blue = make_warning(region="653024", level="blue", detector="d2")
    ingest(orange, blue)
    clock.advance(timedelta(minutes=30))
    assert tick(session, now=clock.now(), settings=settings) == [_alert(session, orange.fingerprint).id]
    clock.advance(timedelta(hours=7, minutes=29))
    assert _alert(session, blue.fingerprint).id not in tick(session, now=clock.now(), settings=settings)
    clock.advance(timedelta(minutes=1))
    assert _alert(session, blue.fingerprint).id in tick(session, now=clock.now(), settings=settings)


def test_acknowledgement_stops_escalation(routed, ingest, make_warning, session, clock, settings):
    w = make_warning(region="653024", level="red")
    ingest(w)
    clock.advance(timedelta(minutes=5))
    a = _alert(session, w.fingerprint)
    acknowledge(
        session, alert_id=a.id, principal=OFFICER, disposition="verified", note="on it", now=clock.now()
    )
    session.commit()
    clock.advance(timedelta(hours=1))
    assert tick(session, now=clock.now(), settings=settings) == []
    assert _escalations(session, a.id) == []


def test_runtime_tick_escalates_and_delivers(routed, ingest, make_warning, clock, sink):
    ingest(make_warning(region="653024", level="red"))
    routed.deliver()
    clock.advance(timedelta(minutes=15))
    escalated, report = routed.tick()
    assert len(escalated) == 1 and report.sent == 1
    assert str(sink.requests[-1].url) == "http://hooks.test/chief"


def test_a_silence_set_after_the_alert_fired_holds_back_its_escalation_until_it_ends(
    routed, ingest, make_warning, session, clock, settings
):
    w = make_warning(region="653024", level="red")
    ingest(w)
    clock.advance(timedelta(minutes=5))
    s = silence_wuqia(session, clock, timedelta(hours=4))
    clock.advance(timedelta(minutes=15))
    assert tick(session, now=clock.now(), settings=settings) == []
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.tier == 0 and a.silenced_by_id == s.id and _escalations(session, a.id) == []
    held = [d for d in list_decisions(session, alert_id=a.id) if d.stage == "escalate"]
    assert [d.decision for d in held] == ["silenced"] and f"silence #{s.id}" in held[0].reason
    # still unacknowledged when the silence ends: escalation goes on
    clock.advance(timedelta(hours=3, minutes=45))  # the silence ends at 04:05
    assert tick(session, now=clock.now(), settings=settings) == [a.id]
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.tier == 1 and a.silenced_by_id is None and len(_escalations(session, a.id)) == 1


def test_a_silence_set_before_the_alert_fired_holds_back_its_escalation_until_it_ends(
    routed, ingest, make_warning, session, clock, settings
):
    s = silence_wuqia(session, clock, timedelta(hours=4))
    clock.advance(timedelta(minutes=5))
    w = make_warning(region="653024", level="red")
    ingest(w)
    a = _alert(session, w.fingerprint)
    assert a.silenced_by_id == s.id
    clock.advance(timedelta(minutes=15))
    assert tick(session, now=clock.now(), settings=settings) == []
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.tier == 0 and _escalations(session, a.id) == []
    # still unacknowledged when the silence ends: escalation goes on
    clock.advance(timedelta(hours=3, minutes=40))  # the silence ends at 04:00
    assert tick(session, now=clock.now(), settings=settings) == [a.id]
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.tier == 1 and a.silenced_by_id is None and len(_escalations(session, a.id)) == 1


def test_a_silence_lifted_early_lets_the_held_escalation_go_on_at_once(
    routed, ingest, make_warning, session, clock, settings
):
    w = make_warning(region="653024", level="red")
    ingest(w)
    s = silence_wuqia(session, clock, timedelta(hours=4))
    clock.advance(timedelta(minutes=15))
    assert tick(session, now=clock.now(), settings=settings) == []
    session.commit()
    assert _alert(session, w.fingerprint).silenced_by_id == s.id
    # the officer lifts the silence half an hour in: the alert is no longer shown as silenced, and
    # its overdue escalation does not wait for the end the silence used to have
    clock.advance(timedelta(minutes=30))
    expire_silence(session, silence_id=s.id, principal=OFFICER, now=clock.now())
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.silenced_by_id is None
    clock.advance(timedelta(seconds=5))
    assert tick(session, now=clock.now(), settings=settings) == [a.id]
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.tier == 1 and len(_escalations(session, a.id)) == 1


def test_lifting_a_silence_keeps_the_own_timer_of_an_alert_not_yet_due(
    routed, ingest, make_warning, session, clock, settings
):
    s = silence_wuqia(session, clock, timedelta(hours=4))
    w = make_warning(region="653024", level="red")
    ingest(w)
    clock.advance(timedelta(minutes=5))
    expire_silence(session, silence_id=s.id, principal=OFFICER, now=clock.now())
    session.commit()
    a = _alert(session, w.fingerprint)
    assert a.silenced_by_id is None
    assert tick(session, now=clock.now(), settings=settings) == []
    clock.advance(timedelta(minutes=10))
    assert tick(session, now=clock.now(), settings=settings) == [a.id]


def test_a_silence_that_ends_before_the_timeout_does_not_delay_the_escalation(
    routed, ingest, make_warning, session, clock, settings
):
    silence_wuqia(session, clock, timedelta(minutes=10))
    w = make_warning(region="653024", level="red")
    ingest(w)
    clock.advance(timedelta(minutes=14, seconds=59))
    assert tick(session, now=clock.now(), settings=settings) == []
    clock.advance(timedelta(seconds=1))
    assert tick(session, now=clock.now(), settings=settings) == [_alert(session, w.fingerprint).id]


def _systemic(make_warning, *, status="firing", week=0):  # type: ignore[no-untyped-def]
    extra = {"regions": ["653022"], "industries": ["food_processing"]} if status == "firing" else {}
    return make_warning(
        kind="systemic",
        detector="systemic_item",
        region=None,
        item="aflatoxin_b1",
        level="orange",
        status=status,
        week=week,
        **extra,
    )


def test_a_told_alert_covered_by_a_systemic_one_escalates_again_once_released(
    routed, ingest, make_warning, session, clock, settings
):
    w = make_warning(region="653022", level="red")
    ingest(w)  # told it fires; its timer runs
    clock.advance(timedelta(minutes=5))
    ingest(_systemic(make_warning))  # covered: its own timer stops, the systemic alert's runs
    a = _alert(session, w.fingerprint)
    assert a.inhibited_by_id is not None and a.escalate_at is None
    systemic_id = a.inhibited_by_id
    clock.advance(timedelta(minutes=30))  # past the red timeout: only the systemic alert escalates
    assert tick(session, now=clock.now(), settings=settings) == [systemic_id]
    session.commit()
    ingest(_systemic(make_warning, status="resolved", week=1))  # released, still firing, unacknowledged
    a = _alert(session, w.fingerprint)
    assert a.state == "firing" and a.inhibited_by_id is None and a.tier == 0
    released = [d for d in list_decisions(session, alert_id=a.id) if d.stage == "inhibit"][-1]
    assert released.decision == "released" and "escalates" in released.reason
    # its timer runs again from the release: 15 minutes at red, then the next tier
    clock.advance(timedelta(minutes=14, seconds=59))
    assert tick(session, now=clock.now(), settings=settings) == []
    clock.advance(timedelta(seconds=1))
    assert tick(session, now=clock.now(), settings=settings) == [a.id]
    session.commit()
    assert _alert(session, w.fingerprint).tier == 1 and len(_escalations(session, a.id)) == 1


def test_an_acknowledged_alert_released_from_a_systemic_one_does_not_escalate(
    routed, ingest, make_warning, session, clock, settings
):
    w = make_warning(region="653022", level="red")
    ingest(w)
    ingest(_systemic(make_warning))
    a = _alert(session, w.fingerprint)
    acknowledge(
        session, alert_id=a.id, principal=OFFICER, disposition="verified", note="on it", now=clock.now()
    )
    session.commit()
    ingest(_systemic(make_warning, status="resolved", week=1))
    a = _alert(session, w.fingerprint)
    assert a.inhibited_by_id is None and a.escalate_at is None
    clock.advance(timedelta(hours=1))
    assert tick(session, now=clock.now(), settings=settings) == []


@pytest.mark.parametrize(
    "told_first", [False, True], ids=["covered-when-it-fired", "covered-after-it-was-told"]
)
def test_an_alert_escalated_by_hand_while_covered_escalates_by_itself_only_once_released(
    routed, client, token, ingest, make_warning, session, clock, sink, told_first
):
    w = make_warning(region="653022", level="red")
    if told_first:
        ingest(w)
        routed.deliver()
        ingest(_systemic(make_warning))
    else:
        ingest(_systemic(make_warning), w)
    a = _alert(session, w.fingerprint)
    assert a.inhibited_by_id is not None and a.escalate_at is None
    systemic_id = a.inhibited_by_id
    clock.advance(timedelta(minutes=5))
    # the duty officer escalates it by hand: recorded and told as any escalation by hand
    r = client.post(f"/api/alerts/{a.id}/escalate", headers=token("duty_officer", name="alice"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["tier"], body["inhibited_by_id"], body["escalate_at"]) == (1, systemic_id, None)
    [n] = _escalations(session, a.id)
    assert (n.receiver, n.status) == ("chief-hook", "sent")
    assert str(sink.requests[-1].url) == "http://hooks.test/chief"
    decision = [d for d in list_decisions(session, alert_id=a.id) if d.stage == "escalate"][-1]
    assert "escalated by alice; tier 0 -> 1, told chief-hook" in decision.reason
    assert f"covered by systemic alert #{systemic_id}" in decision.reason
    # still covered long past the red timeout: its own timer is held, only the systemic alert escalates
    clock.advance(timedelta(hours=2))
    escalated, _ = routed.tick()
    assert escalated == [systemic_id]
    assert _alert(session, w.fingerprint).tier == 1 and len(_escalations(session, a.id)) == 1
    # released, still firing and unacknowledged: its timer starts at the release, then the next tier
    ingest(_systemic(make_warning, status="resolved", week=1))
    a = _alert(session, w.fingerprint)
    assert a.state == "firing" and a.inhibited_by_id is None and a.escalate_at is not None
    clock.advance(timedelta(minutes=14, seconds=59))
    assert routed.tick()[0] == []
    clock.advance(timedelta(seconds=1))
    assert routed.tick()[0] == [a.id]
    assert _alert(session, w.fingerprint).tier == 2 and len(_escalations(session, a.id)) == 2
