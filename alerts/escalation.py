"""Escalation: an alert not acknowledged in time goes to the next tier.

``tick(now)`` is what the server calls periodically with its clock; tests call it with a fake
clock. The timeout per level comes from the settings (red 15 min, orange 30 min, yellow 2 h,
blue 8 h by default); each escalation is a decision with its reason, an audit entry, and
notifications owed to the route's escalation receivers (or the alert's own receivers), carrying the
alert's latest warning and the escalation (step, reason, since when the alert fires unacknowledged).

A silence holds back escalation as it holds back every other notification, whether it was set before
or after the alert fired: a due alert that an active silence matches waits until the silence ends, and
escalates then if it is still firing and unacknowledged.

An alert a systemic alert covers (``inhibited_by_id``) has no timer of its own, even after a duty
officer escalates it by hand: that escalation is recorded and told, and the timer to the next tier
starts when the systemic alert releases it (``alerts.pipeline``), as for any released alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import Level

from .alert.models import Alert, AlertState
from .alert.service import AUDITED, alert_dict, get_alert, latest_warning, record_decision
from .audit import service as audit
from .auth.service import Principal
from .errors import IllegalTransition
from .events import emit, of_county
from .notification.service import owe
from .route.models import Route
from .settings import AlertSettings
from .silence.ended import release_ended
from .silence.service import active_silences, matching_silence

__all__ = ["escalate", "escalate_alert", "tick"]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds < 7200 else f"{seconds / 3600:g} h"


def escalate_alert(
    session: Session, *, alert: Alert, now: datetime, settings: AlertSettings, actor: str, reason: str
) -> None:
    before = audit.snapshot(alert, AUDITED)
    why = reason
    route = session.get(Route, alert.route_id) if alert.route_id is not None else None
    receivers = (
        list(route.escalation_receivers) if route and route.escalation_receivers else list(alert.receivers)
    )
    alert.tier += 1
    reason += f"; tier {alert.tier - 1} -> {alert.tier}" + (
        f", told {', '.join(receivers)}" if receivers else ", no escalation receivers"
    )
    if alert.tier >= settings.escalation_tiers:
        alert.escalate_at = None
    elif alert.inhibited_by_id is not None:  # covered: the timer starts when the systemic alert releases it
        alert.escalate_at = None
        reason += (
            f"; covered by systemic alert #{alert.inhibited_by_id}: escalates by itself only "
            "once released, if still unacknowledged"
        )
    else:
        alert.escalate_at = now + timedelta(seconds=settings.escalation_timeout(Level(alert.level)))
    alert.updated_at = now
    record_decision(
        session,
        alert=alert,
        stage="escalate",
        decision=f"tier_{alert.tier}",
        reason=reason,
        at=now,
        warning_id=None,
    )
    owe(
        session,
        alert=alert,
        event="escalated",
        receivers=receivers,
        key=f"escalate:{alert.id}:{alert.started_at.isoformat()}:{alert.tier}",
        warning=latest_warning(session, alert),
        external_url=settings.external_url,
        now=now,
        escalation={
            "step": alert.tier,
            "tiers": settings.escalation_tiers,
            "reason": why,
            "unacknowledged_since": alert.started_at.isoformat(),
        },
    )
    audit.record(
        session,
        actor=actor,
        action="alert.escalate",
        entity="alert",
        entity_id=alert.id,
        at=now,
        before=before,
        after=audit.snapshot(alert, AUDITED),
    )
    emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))


def tick(session: Session, *, now: datetime, settings: AlertSettings) -> list[int]:
    """Escalate every firing alert whose acknowledgement is overdue at ``now``; returns their ids.

    One an active silence matches is held back until the silence ends (recorded as a decision). First,
    the alerts no silence covers any more are released, and told what a silence held back
    (:func:`alerts.silence.ended.release_ended`).
    """
    release_ended(session, now=now, settings=settings)
    due = list(
        session.scalars(
            select(Alert)
            .where(
                Alert.state == AlertState.firing.value,
                Alert.escalate_at.is_not(None),
                Alert.escalate_at <= now,
            )
            .order_by(Alert.id)
        )
    )
    silences = active_silences(session, now=now) if due else []
    escalated = []
    for alert in due:
        silence = matching_silence(silences, alert, now=now)
        if silence is not None:
            alert.silenced_by_id = silence.id
            alert.escalate_at = silence.ends_at
            alert.updated_at = now
            record_decision(
                session,
                alert=alert,
                stage="escalate",
                decision="silenced",
                reason=f"held back: silence #{silence.id} by {silence.author} until "
                f"{silence.ends_at.isoformat()} ({silence.reason}); escalates then if still unacknowledged",
                at=now,
                warning_id=None,
            )
            emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))
            continue
        alert.silenced_by_id = None
        escalated.append(alert.id)
        timeout = settings.escalation_timeout(Level(alert.level))
        escalate_alert(
            session,
            alert=alert,
            now=now,
            settings=settings,
            actor="system",
            reason=f"not acknowledged within {_minutes(timeout)} at level {alert.level}",
        )
    return escalated


def escalate(
    session: Session, *, alert_id: int, principal: Principal, now: datetime, settings: AlertSettings
) -> Alert:
    """A duty officer escalates by hand (only a firing alert below the top tier)."""
    alert = get_alert(session, alert_id=alert_id, principal=principal, acting=True)
    if alert.state != AlertState.firing:
        raise IllegalTransition(f"cannot escalate an alert that is {alert.state}", field="state")
    if alert.tier >= settings.escalation_tiers:
        raise IllegalTransition(f"already at the top tier ({alert.tier})", field="tier")
    escalate_alert(
        session,
        alert=alert,
        now=now,
        settings=settings,
        actor=principal.name,
        reason=f"escalated by {principal.name}",
    )
    return alert
