"""Service functions of the alert domain: read, filter, acknowledge, comment, assign, record decisions.

Keyword-only over a SQLAlchemy session; the caller commits. Every change goes to the audit log
and, once committed, to the change feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schemas import Level

from ..audit import service as audit
from ..auth.service import Principal, check_county
from ..errors import InvalidInput, NotFound
from ..events import emit, of_county
from .models import Alert, AlertComment, AlertDecision, Disposition, ReceivedWarning
from .state import next_state

__all__ = [
    "AUDITED",
    "AlertFilter",
    "acknowledge",
    "alert_dict",
    "assign",
    "comment",
    "get_alert",
    "latest_warning",
    "list_alerts",
    "list_comments",
    "list_decisions",
    "record_decision",
]

#: fields whose before/after the audit log keeps
AUDITED = ("state", "level", "tier", "disposition", "assignee", "acknowledged_by", "acknowledged_at")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    state: str | None = None
    kind: str | None = None
    level: str | None = None
    region: str | None = None
    industry: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def alert_dict(alert: Alert) -> dict[str, Any]:
    """The API and change-feed picture of an alert."""
    out: dict[str, Any] = {}
    for col in Alert.__table__.columns:
        value = getattr(alert, col.key)
        out[col.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def record_decision(
    session: Session,
    *,
    alert: Alert,
    stage: str,
    decision: str,
    reason: str,
    at: datetime,
    warning_id: str | None,
) -> None:
    session.add(
        AlertDecision(
            alert=alert, warning_id=warning_id, stage=stage, decision=decision, reason=reason, at=at
        )
    )


def latest_warning(session: Session, alert: Alert) -> dict[str, Any] | None:
    """The alert's latest emission as received (its evidence and summary), if it is still stored."""
    row = session.get(ReceivedWarning, alert.last_warning_id)
    return dict(row.payload) if row is not None else None


def get_alert(
    session: Session, *, alert_id: int, principal: Principal | None = None, acting: bool = False
) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert with id {alert_id}", field="alert_id")
    if principal is not None:
        check_county(principal, alert.region, acting=acting, what=f"alert {alert_id}")
    return alert


def list_alerts(
    session: Session, *, principal: Principal | None, filters: AlertFilter, limit: int = 50, offset: int = 0
) -> tuple[list[Alert], int]:
    """A page of alerts (newest activity first) and the total that match."""
    q = select(Alert)
    f = filters
    for column, value in (
        (Alert.state, f.state),
        (Alert.kind, f.kind),
        (Alert.level, f.level),
        (Alert.region, f.region),
        (Alert.industry, f.industry),
    ):
        if value is not None:
            q = q.where(column == value)
    # the alerts active during [since, until): first seen before its end, last seen at or after its start
    if f.since is not None:
        q = q.where(Alert.last_seen >= f.since)
    if f.until is not None:
        q = q.where(Alert.first_seen < f.until)
    if principal is not None and principal.county is not None:
        q = q.where((Alert.region == principal.county) | Alert.region.is_(None))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def _changed(
    session: Session, alert: Alert, *, actor: str, action: str, before: dict[str, Any], now: datetime
) -> None:
    alert.updated_at = now
    audit.record(
        session,
        actor=actor,
        action=action,
        entity="alert",
        entity_id=alert.id,
        at=now,
        before=before,
        after=audit.snapshot(alert, AUDITED),
    )
    emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))


def acknowledge(
    session: Session,
    *,
    alert_id: int,
    principal: Principal,
    disposition: str,
    note: str | None,
    now: datetime,
) -> Alert:
    """Acknowledge with a disposition; stops escalation. Refused (409) unless the alert is firing."""
    try:
        disp = Disposition(disposition)
    except ValueError:
        raise InvalidInput(
            f"must be one of {', '.join(d.value for d in Disposition)}", field="disposition"
        ) from None
    alert = get_alert(session, alert_id=alert_id, principal=principal, acting=True)
    before = audit.snapshot(alert, AUDITED)
    alert.state = next_state(alert.state, "acknowledge").value
    alert.disposition = disp.value
    alert.acknowledged_at = now
    alert.acknowledged_by = principal.name
    alert.acknowledged_level = alert.level
    alert.escalate_at = None
    record_decision(
        session,
        alert=alert,
        stage="acknowledge",
        decision=disp.value,
        reason=f"acknowledged by {principal.name} as {disp.value}" + (f": {note}" if note else ""),
        at=now,
        warning_id=None,
    )
    if note:
        session.add(AlertComment(alert_id=alert.id, author=principal.name, body=note, at=now))
    _changed(session, alert, actor=principal.name, action="alert.acknowledge", before=before, now=now)
    return alert


def comment(
    session: Session, *, alert_id: int, principal: Principal, body: str, now: datetime
) -> AlertComment:
    if not body.strip():
        raise InvalidInput("must not be empty", field="body")
    alert = get_alert(session, alert_id=alert_id, principal=principal, acting=True)
    row = AlertComment(alert_id=alert.id, author=principal.name, body=body, at=now)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=principal.name,
        action="alert.comment",
        entity="alert",
        entity_id=alert.id,
        at=now,
        before=None,
        after={"comment": body},
    )
    emit(
        session,
        "alert.commented",
        counties=of_county(alert.region),
        data={"alert_id": alert.id, "author": principal.name},
    )
    return row


def assign(session: Session, *, alert_id: int, principal: Principal, assignee: str, now: datetime) -> Alert:
    if not assignee.strip():
        raise InvalidInput("must not be empty", field="assignee")
    alert = get_alert(session, alert_id=alert_id, principal=principal, acting=True)
    before = audit.snapshot(alert, AUDITED)
    alert.assignee = assignee
    _changed(session, alert, actor=principal.name, action="alert.assign", before=before, now=now)
    return alert


def list_comments(session: Session, *, alert_id: int) -> list[AlertComment]:
    return list(
        session.scalars(
            select(AlertComment).where(AlertComment.alert_id == alert_id).order_by(AlertComment.id)
        )
    )


def list_decisions(session: Session, *, alert_id: int) -> list[AlertDecision]:
    return list(
        session.scalars(
            select(AlertDecision).where(AlertDecision.alert_id == alert_id).order_by(AlertDecision.id)
        )
    )


def level_of(alert: Alert) -> Level:
    return Level(alert.level)
