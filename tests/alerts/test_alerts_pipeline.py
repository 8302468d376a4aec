"""Every pipeline stage: dedup/grouping, inhibition, silences, routing, notification — with reasons."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from alerts.alert.models import Alert, AlertDecision, ReceivedWarning
from alerts.auth.models import Role
from alerts.auth.service import Principal
from alerts.notification.models import Notification
from alerts.silence.service import create_silence

OFFICER = Principal(name="officer", role=Role.duty_officer)


def _alert(session, fingerprint):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(Alert).where(Alert.fingerprint == fingerprint))


def _decisions(session, alert_id, stage=None):  # type: ignore[no-untyped-def]
    q = select(AlertDecision).where(AlertDecision.alert_id == alert_id).order_by(AlertDecision.id)
    if stage:
        q = q.where(AlertDecision.stage == stage)
    return list(session.scalars(q))


def _owed(session, alert_id=None):  # type: ignore[no-untyped-def]
    q = select(Notification).order_by(Notification.id)
    if alert_id is not None:
        q = q.where(Notification.alert_id == alert_id)
    return list(session.scalars(q))


# ----------------------------------------------------------------------------------------- dedup


def test_repeats_fold_into_one_alert(routed, ingest, make_warning, session):
    w1 = make_warning(level="yellow", week=0)
    w2 = make_warning(level="orange", week=1)
    w3 = make_warning(level="yellow", week=2)
    outcomes = ingest(w1, w2, w3)
    assert [o.change for o in outcomes] == ["new", "level_raised", "grouped"]
    assert session.scalar(select(func.count()).select_from(Alert)) == 1
    a = _alert(session, w1.fingerprint)
    assert a.count == 3
    assert a.first_seen == w1.raised_at and a.last_seen == w3.raised_at
    assert a.level == "yellow" and a.max_level == "orange"
    assert a.last_warning_id == w3.id and a.window_end == w3.window_end
    # told on firing and on the level raise, not on the repeat
    assert [n.event for n in _owed(session, a.id)] == ["firing", "level_raised"]


def test_same_warning_id_twice_changes_nothing(routed, ingest, make_warning, session):
    w = make_warning()
    ingest(w)
    before = (session.scalar(select(func.count()).select_from(AlertDecision)), len(_owed(session)))
    [again] = ingest(w)
    assert again.change == "duplicate"
    assert again.alert_id == _alert(session, w.fingerprint).id
    assert _alert(session, w.fingerprint).count == 1
    assert (session.scalar(select(func.count()).select_from(AlertDecision)), len(_owed(session))) == before
    assert session.scalar(select(func.count()).select_from(ReceivedWarning)) == 1


def test_resolved_emission_resolves_and_a_new_firing_reopens(routed, ingest, make_warning, session):
    w = make_warning(week=0)
    ingest(w, make_warning(status="resolved", week=1))
    a = _alert(session, w.fingerprint)
    assert a.state == "resolved" and a.resolved_at is not None and a.escalate_at is None
    [o] = ingest(make_warning(level="red", week=3))
    assert o.change == "reopened"
    a = _alert(session, w.fingerprint)
    assert a.state == "firing" and a.resolved_at is None and a.tier == 0 and a.max_level == "red"
    assert [n.event for n in _owed(session, a.id)] == ["firing", "resolved", "firing"]


def test_an_older_emission_is_counted_but_changes_no_state(routed, ingest, make_warning, session):
    ingest(make_warning(week=2))
    [o] = ingest(make_warning(status="resolved", week=1))
    assert o.change == "stale"
    a = _alert(session, make_warning().fingerprint)
    assert a.state == "firing" and a.count == 2
    assert "before the last emission" in _decisions(session, a.id, "dedup")[-1].reason


def test_an_older_emission_of_a_higher_level_leaves_the_highest_level_reached(
    routed, ingest, make_warning, session
):
    ingest(make_warning(level="yellow", week=2))
    [o] = ingest(make_warning(level="red", week=1))
    assert o.change == "stale"
    a = _alert(session, make_warning().fingerprint)
    assert a.level == "yellow" and a.max_level == "yellow" and a.count == 2


def test_a_level_raise_needs_a_fresh_acknowledgement(routed, ingest, make_warning, session, clock):
    from alerts.alert.service import acknowledge

    ingest(make_warning(level="yellow"))
    a = _alert(session, make_warning().fingerprint)
    acknowledge(session, alert_id=a.id, principal=OFFICER, disposition="verified", note=None, now=clock.now())
    session.commit()
    ingest(make_warning(level="red", week=1))
    a = _alert(session, a.fingerprint)
    assert a.state == "firing" and a.acknowledged_by is None and a.escalate_at is not None


# --------------------------------------------------------------------------------------- inhibit


def _systemic(
    make_warning,
    *,
    status="firing",
    week=0,
    regions=("653022", "653023"),
    industries=("food_processing", "agricultural_processing"),
):  # type: ignore[no-untyped-def]
    cells = [{"region": r, "industry": i, "failed": 3, "tested": 10} for r in regions for i in industries]
    extra = (
        {"regions": list(regions), "industries": list(industries), "cells": cells}
        if status == "firing"
        else {}
    )
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


def test_systemic_alert_holds_back_the_regional_alerts_it_covers(routed, ingest, make_warning, session):
    ingest(_systemic(make_warning))
    covered = make_warning(region="653022")
    uncovered = make_warning(region="653024")
    ingest(covered, uncovered)
    systemic = _alert(session, _systemic(make_warning).fingerprint)
    c, u = _alert(session, covered.fingerprint), _alert(session, uncovered.fingerprint)
    assert c.inhibited_by_id == systemic.id and u.inhibited_by_id is None
    assert _owed(session, c.id) == [] and len(_owed(session, u.id)) == 1
    [d] = _decisions(session, c.id, "inhibit")
    assert d.decision == "inhibited" and f"systemic alert #{systemic.id}" in d.reason
    assert c.escalate_at is None  # held-back alerts do not escalate on their own
    ind = make_warning(kind="industry", region=None, industry="food_processing", detector="industry_rate")
    ingest(ind)
    assert _alert(session, ind.fingerprint).inhibited_by_id == systemic.id


def test_systemic_alert_attaches_earlier_alerts_and_releases_them_when_resolved(
    routed, ingest, make_warning, session
):
    early = make_warning(region="653023")
    ingest(early)
    ingest(_systemic(make_warning))
    a = _alert(session, early.fingerprint)
    systemic = _alert(session, _systemic(make_warning).fingerprint)
    assert a.inhibited_by_id == systemic.id
    assert _decisions(session, a.id, "inhibit")[-1].decision == "attached"
    ingest(_systemic(make_warning, status="resolved", week=1))
    a = _alert(session, early.fingerprint)
    assert a.inhibited_by_id is None
    assert _decisions(session, a.id, "inhibit")[-1].decision == "released"
    # it had been told already, so the release does not tell again
    assert [n.event for n in _owed(session, a.id)] == ["firing"]


def test_released_alert_that_was_held_back_is_told_when_the_systemic_one_resolves(
    routed, ingest, make_warning, session
):
    ingest(_systemic(make_warning))
    held = make_warning(region="653022")
    ingest(held)
    assert _owed(session, _alert(session, held.fingerprint).id) == []
    ingest(_systemic(make_warning, status="resolved", week=1))
    assert [n.event for n in _owed(session, _alert(session, held.fingerprint).id)] == ["firing"]


def test_held_back_alert_that_resolves_under_the_systemic_one_is_not_told_it_resolved(
    routed, ingest, make_warning, session
):
    ingest(_systemic(make_warning))
    held = make_warning(region="653022")
    ingest(held, make_warning(region="653022", status="resolved", week=1))
    a = _alert(session, held.fingerprint)
    assert a.state == "resolved"
    assert _owed(session, a.id) == []  # never told it fired, so no "resolved" out of the blue
    d = _decisions(session, a.id, "inhibit")[-1]
    assert d.decision == "inhibited" and "never told" in d.reason


def test_attached_alert_that_was_told_it_fired_is_told_it_resolved(routed, ingest, make_warning, session):
    early = make_warning(region="653023")
    ingest(early)
    ingest(_systemic(make_warning))
    ingest(make_warning(region="653023", status="resolved", week=1))
    assert [n.event for n in _owed(session, _alert(session, early.fingerprint).id)] == ["firing", "resolved"]


def test_alert_still_covered_by_another_systemic_alert_stays_held_back_when_one_resolves(
    routed, ingest, make_warning, session
):
    ingest(_systemic(make_warning))
    wider = make_warning(
        kind="systemic",
        detector="systemic_item_wide",
        region=None,
        item="aflatoxin_b1",
        level="orange",
        regions=["653022", "653024"],
    )
    ingest(wider)
    held = make_warning(region="653022")
    ingest(held)
    first, second = _alert(session, _systemic(make_warning).fingerprint), _alert(session, wider.fingerprint)
    assert _alert(session, held.fingerprint).inhibited_by_id in (first.id, second.id)
    # whichever holds it, resolving the first systemic alert leaves it covered by the second
    ingest(_systemic(make_warning, status="resolved", week=1))
    a = _alert(session, held.fingerprint)
    assert a.inhibited_by_id == second.id and a.escalate_at is None
    assert _owed(session, a.id) == []
    d = _decisions(session, a.id, "inhibit")[-1]
    assert d.decision in ("attached", "inhibited") and f"systemic alert #{second.id}" in d.reason


def test_alert_attached_to_the_later_systemic_alert_stays_held_back_by_the_earlier_one(
    routed, ingest, make_warning, session
):
    early = make_warning(region="653022")
    ingest(early)  # told it fires
    ingest(_systemic(make_warning))
    wider = make_warning(
        kind="systemic",
        detector="systemic_item_wide",
        region=None,
        item="aflatoxin_b1",
        level="orange",
        regions=["653022", "653024"],
    )
    ingest(wider)
    first, second = _alert(session, _systemic(make_warning).fingerprint), _alert(session, wider.fingerprint)
    assert _alert(session, early.fingerprint).inhibited_by_id == second.id
    ingest(
        make_warning(
            kind="systemic",
            detector="systemic_item_wide",
            region=None,
            item="aflatoxin_b1",
            level="orange",
            status="resolved",
            week=1,
        )
    )
    a = _alert(session, early.fingerprint)
    assert a.inhibited_by_id == first.id and a.escalate_at is None  # still covered: no escalation of its own
    d = _decisions(session, a.id, "inhibit")[-1]
    assert d.decision == "attached" and f"still covered by systemic alert #{first.id}" in d.reason
    assert [n.event for n in _owed(session, a.id)] == ["firing"]


def test_systemic_alert_of_another_item_does_not_cover(routed, ingest, make_warning, session):
    ingest(_systemic(make_warning))
    other = make_warning(region="653022", item="lead", detector="item_rate")
    ingest(other)
    assert _alert(session, other.fingerprint).inhibited_by_id is None


# --------------------------------------------------------------------------------------- silence


def test_silence_holds_back_matching_alerts_and_expires_on_time(routed, ingest, make_warning, session, clock):
    now = clock.now()
    create_silence(
        session,
        principal=OFFICER,
        starts_at=now,
        ends_at=now + timedelta(hours=2),
        reason="lab recalibration",
        now=now,
        catalogue=routed.catalogue,
        region="653022",
        level="orange",
    )
    session.commit()
    muted = make_warning(region="653022", level="yellow")
    red = make_warning(region="653022", level="red", detector="other_detector")
    other_county = make_warning(region="653001", level="yellow")
    ingest(muted, red, other_county)
    m = _alert(session, muted.fingerprint)
    assert m.silenced_by_id is not None and _owed(session, m.id) == []
    [d] = _decisions(session, m.id, "silence")
    assert d.decision == "silenced" and "lab recalibration" in d.reason and "officer" in d.reason
    assert _alert(session, red.fingerprint).silenced_by_id is None  # above the silence's level
    assert _alert(session, other_county.fingerprint).silenced_by_id is None
    clock.advance(timedelta(hours=2))  # the silence ends exactly now
    later = make_warning(region="653022", level="yellow", detector="third_detector")
    ingest(later)
    assert _alert(session, later.fingerprint).silenced_by_id is None
    assert len(_owed(session, _alert(session, later.fingerprint).id)) == 1


def test_silence_matchers_on_kind_industry_and_item(routed, ingest, make_warning, session, clock):
    now = clock.now()
    create_silence(
        session,
        principal=OFFICER,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        reason="known",
        now=now,
        catalogue=routed.catalogue,
        kind="industry",
        industry="textiles",
        item="formaldehyde",
    )
    session.commit()
    hit = make_warning(kind="industry", region=None, industry="textiles", item="formaldehyde")
    miss_item = make_warning(kind="industry", region=None, industry="textiles", item="ph")
    miss_kind = make_warning(
        kind="enterprise",
        region=None,
        industry="textiles",
        item="formaldehyde",
        enterprise_id="91653000MA77XXXX0X",
    )
    ingest(hit, miss_item, miss_kind)
    assert _alert(session, hit.fingerprint).silenced_by_id is not None
    assert _alert(session, miss_item.fingerprint).silenced_by_id is None
    assert _alert(session, miss_kind.fingerprint).silenced_by_id is None


# ----------------------------------------------------------------------------------------- route


def test_routes_by_county_industry_and_level_with_a_default(routed, ingest, make_warning, session):
    food_red = make_warning(region="653022", industry="food_processing", level="red")
    food_yellow = make_warning(region="653022", industry="food_processing", level="yellow", detector="d2")
    elsewhere = make_warning(region="653024", level="red")
    ingest(food_red, food_yellow, elsewhere)
    assert _alert(session, food_red.fingerprint).team == "akto-food"
    assert sorted(n.receiver for n in _owed(session, _alert(session, food_red.fingerprint).id)) == [
        "akto-hook",
        "chief-hook",
    ]
    assert _alert(session, food_yellow.fingerprint).team == "akto"  # below the food route's minimum level
    e = _alert(session, elsewhere.fingerprint)
    assert e.team == "duty"
    [d] = _decisions(session, e.id, "route")
    assert d.decision == "routed" and "'default'" in d.reason


def test_no_route_at_all_goes_to_the_default_team_and_says_so(runtime, ingest, make_warning, session):
    w = make_warning()
    ingest(w)
    a = _alert(session, w.fingerprint)
    assert a.team == "duty" and a.receivers == []
    assert _decisions(session, a.id, "route")[0].decision == "default"
    assert _decisions(session, a.id, "notify")[0].reason.endswith("has no receivers")


def test_every_stage_records_its_decision_in_order(routed, ingest, make_warning, session):
    w = make_warning(region="653024")
    ingest(w)
    a = _alert(session, w.fingerprint)
    stages = [(d.stage, d.decision) for d in _decisions(session, a.id)]
    assert stages == [
        ("dedup", "new"),
        ("inhibit", "pass"),
        ("silence", "pass"),
        ("route", "routed"),
        ("notify", "owed"),
    ]
    assert all(d.warning_id == w.id for d in _decisions(session, a.id))


def test_a_warning_twice_in_one_batch_names_its_alert_both_times(
    routed, make_warning, session, clock, settings
):
    from alerts.pipeline import process_batch

    w = make_warning()
    first, again = process_batch(session, warnings=[w, w], now=clock.now(), settings=settings)
    session.commit()
    assert (first.change, again.change) == ("new", "duplicate")
    assert first.alert_id is not None and again.alert_id == first.alert_id


def test_an_acknowledged_alert_is_paged_again_only_above_the_level_acknowledged(
    routed, ingest, make_warning, session, clock
):
    from alerts.alert.service import acknowledge

    w = make_warning(region="653024", level="orange")
    ingest(w)
    a = _alert(session, w.fingerprint)
    acknowledge(session, alert_id=a.id, principal=OFFICER, disposition="verified", note=None, now=clock.now())
    session.commit()
    # falls to yellow, rises back to orange: what was acknowledged, nobody is paged again
    fell, rose = ingest(
        make_warning(region="653024", level="yellow", week=1),
        make_warning(region="653024", level="orange", week=2),
    )
    assert (fell.change, rose.change) == ("grouped", "grouped")
    a = _alert(session, w.fingerprint)
    assert a.state == "acknowledged" and a.level == "orange" and a.escalate_at is None
    assert [n.event for n in _owed(session, a.id)] == ["firing"]
    assert "not above the acknowledged level orange" in _decisions(session, a.id, "dedup")[-1].reason
    # above it: a fresh acknowledgement is needed
    [up] = ingest(make_warning(region="653024", level="red", week=3))
    assert up.change == "level_raised"
    a = _alert(session, w.fingerprint)
    assert a.state == "firing" and [n.event for n in _owed(session, a.id)] == ["firing", "level_raised"]


def test_an_alert_acknowledged_at_red_is_not_paged_again_when_it_falls_and_rises_to_orange(
    routed, ingest, make_warning, session, clock
):
    from alerts.alert.service import acknowledge

    w = make_warning(region="653024", level="red")
    ingest(w)
    a = _alert(session, w.fingerprint)
    acknowledge(session, alert_id=a.id, principal=OFFICER, disposition="verified", note=None, now=clock.now())
    session.commit()
    ingest(
        make_warning(region="653024", level="yellow", week=1),
        make_warning(region="653024", level="orange", week=2),
    )
    a = _alert(session, w.fingerprint)
    assert a.state == "acknowledged" and [n.event for n in _owed(session, a.id)] == ["firing"]
