"""When a silence no longer covers an alert (it ran out, or was lifted early): what the escalation
tick does about it.

The alert is no longer marked silenced (or is marked by another silence that covers it now). One whose
notification a silence held back (``held_event``) and that still fires, unacknowledged and not covered
by a systemic alert, is told now to its route's receivers, with its latest warning, once: as
Alertmanager tells a silenced alert that still fires when its silence ends. One that resolved or was
acknowledged meanwhile is not told; one a systemic alert covers is told when that releases it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..alert.models import Alert, AlertState
from ..alert.service import alert_dict, latest_warning, record_decision
from ..events import emit, of_county
from ..notification.service import owe
from ..settings import AlertSettings
from .service import active_silences, matching_silence

__all__ = ["release_ended"]


def release_ended(session: Session, *, now: datetime, settings: AlertSettings) -> list[int]:
    """Release the alerts no active silence covers any more; returns the ids of those told now."""
    held = list(
        session.scalars(
            select(Alert)
            .where(Alert.silenced_by_id.is_not(None) | Alert.held_event.is_not(None))
            .order_by(Alert.id)
        )
    )
    silences = active_silences(session, now=now) if held else []
    told = []
    for alert in held:
        silence = matching_silence(silences, alert, now=now)
        if silence is not None:
            if alert.silenced_by_id is None and alert.state != AlertState.resolved:
                alert.silenced_by_id = silence.id
                alert.updated_at = now
                emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))
            continue
        changed = alert.silenced_by_id is not None
        alert.silenced_by_id = None
        if alert.held_event is not None and alert.inhibited_by_id is None:
            if alert.state == AlertState.firing and _tell(session, alert, now=now, settings=settings):
                told.append(alert.id)
            alert.held_event = None
            changed = True
        if changed:
            alert.updated_at = now
            emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))
    return told


def _tell(session: Session, alert: Alert, *, now: datetime, settings: AlertSettings) -> bool:
    event = alert.held_event or "firing"
    if not alert.receivers:
        reason = f"{event}: no silence covers it any more; team {alert.team!r} has no receivers"
        record_decision(
            session, alert=alert, stage="notify", decision="none", reason=reason, at=now, warning_id=None
        )
        return False
    owe(
        session,
        alert=alert,
        event=event,
        receivers=list(alert.receivers),
        key=f"{alert.last_warning_id}:unsilenced",
        warning=latest_warning(session, alert),
        external_url=settings.external_url,
        now=now,
    )
    record_decision(
        session,
        alert=alert,
        stage="notify",
        decision="owed",
        reason=f"{event}: held back by a silence that no longer covers it; "
        f"owed to {', '.join(alert.receivers)}",
        at=now,
        warning_id=alert.last_warning_id,
    )
    return True
