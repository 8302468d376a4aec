"""HTTP views of the alert domain (thin: parse, call the service, commit, shape the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from schemas import Level, RiskWarning, WarningKind

from ..auth.service import Principal
from ..deps import Cat, Id, Now, Offset, Rt, Sess, caller
from ..escalation import escalate
from ..incident.service import incidents_of_alert
from ..inputs import UtcDatetime, check_catalogue, check_storable
from ..notification.service import list_notifications
from ..pipeline import process_warning
from . import service
from .models import AlertState, Disposition

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["alerts"])

Reader = Annotated[Principal, Depends(caller("alerts:read"))]
Actor = Annotated[Principal, Depends(caller("alerts:act"))]
Ingester = Annotated[Principal, Depends(caller("warnings:write"))]


class AlertPage(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


class AckBody(BaseModel):
    disposition: Disposition
    note: str | None = Field(default=None, max_length=2000)


class CommentBody(BaseModel):
    body: str = Field(min_length=1, max_length=4000)


class AssignBody(BaseModel):
    assignee: str = Field(min_length=1, max_length=64)


@router.get("/alerts", response_model=AlertPage)
def list_alerts(
    session: Sess,
    principal: Reader,
    state: AlertState | None = None,
    kind: WarningKind | None = None,
    level: Level | None = None,
    county: Annotated[str | None, Query(max_length=16)] = None,
    industry: Annotated[str | None, Query(max_length=64)] = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    *,
    cat: Cat,
) -> AlertPage:
    """Alerts, the most recently changed first. ``since`` (inclusive) and ``until`` (exclusive) keep
    the alerts active during that span: first seen before ``until``, last seen at or after ``since``.
    ``county`` and ``industry``, when given, must be the catalogue's (a typo would answer "no alerts")."""
    check_catalogue(cat, county=county, industry=industry)
    filters = service.AlertFilter(
        state=state, kind=kind, level=level, region=county, industry=industry, since=since, until=until
    )
    rows, total = service.list_alerts(
        session, principal=principal, filters=filters, limit=limit, offset=offset
    )
    return AlertPage(items=[service.alert_dict(a) for a in rows], total=total, limit=limit, offset=offset)


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: Id, session: Sess, principal: Reader) -> dict[str, Any]:
    alert = service.get_alert(session, alert_id=alert_id, principal=principal)
    return {
        **service.alert_dict(alert),
        "decisions": [
            {
                "at": d.at.isoformat(),
                "stage": d.stage,
                "decision": d.decision,
                "reason": d.reason,
                "warning_id": d.warning_id,
            }
            for d in service.list_decisions(session, alert_id=alert_id)
        ],
        "comments": [
            {"at": c.at.isoformat(), "author": c.author, "body": c.body}
            for c in service.list_comments(session, alert_id=alert_id)
        ],
        "incidents": [
            {"id": i.id, "title": i.title, "state": i.state}
            for i in incidents_of_alert(session, alert_id=alert_id, principal=principal)
        ],
        "notifications": [
            {
                "id": n.id,
                "event": n.event,
                "receiver": n.receiver,
                "status": n.status,
                "attempts": n.attempts,
                "last_error": n.last_error,
            }
            for n in list_notifications(session, alert_id=alert_id)
        ],
    }


@router.post("/alerts/{alert_id}/ack")
def acknowledge(
    alert_id: Id, body: AckBody, session: Sess, principal: Actor, now: Now, rt: Rt
) -> dict[str, Any]:
    alert = service.acknowledge(
        session, alert_id=alert_id, principal=principal, disposition=body.disposition, note=body.note, now=now
    )
    session.commit()
    assert rt.metrics is not None
    rt.metrics.acknowledged(alert)
    return service.alert_dict(alert)


@router.post("/alerts/{alert_id}/comments", status_code=201)
def comment(alert_id: Id, body: CommentBody, session: Sess, principal: Actor, now: Now) -> dict[str, Any]:
    row = service.comment(session, alert_id=alert_id, principal=principal, body=body.body, now=now)
    session.commit()
    return {
        "id": row.id,
        "alert_id": alert_id,
        "author": row.author,
        "body": row.body,
        "at": row.at.isoformat(),
    }


@router.post("/alerts/{alert_id}/assign")
def assign(alert_id: Id, body: AssignBody, session: Sess, principal: Actor, now: Now) -> dict[str, Any]:
    alert = service.assign(session, alert_id=alert_id, principal=principal, assignee=body.assignee, now=now)
    session.commit()
    return service.alert_dict(alert)


@router.post("/alerts/{alert_id}/escalate")
def escalate_alert(alert_id: Id, session: Sess, principal: Actor, now: Now, rt: Rt) -> dict[str, Any]:
    alert = escalate(session, alert_id=alert_id, principal=principal, now=now, settings=rt.settings)
    session.commit()
    rt.deliver()
    return service.alert_dict(alert)


@router.post("/warnings", status_code=202)
def post_warning(
    warning: RiskWarning, session: Sess, principal: Ingester, now: Now, rt: Rt, cat: Cat
) -> dict[str, Any]:
    """Feed one warning straight into the pipeline (the same path as the topic consumer). A scope
    naming a county or industry the catalogue does not know is refused here; the consumer, which
    carries the detectors' own warnings, does not refuse them for it."""
    check_storable(warning)
    check_catalogue(
        cat,
        county=warning.scope.region,
        industry=warning.scope.industry,
        fields=("scope.region", "scope.industry"),
    )
    outcome = process_warning(session, warning=warning, now=now, settings=rt.settings)
    session.commit()
    rt.deliver()
    return {
        "warning_id": outcome.warning_id,
        "alert_id": outcome.alert_id,
        "change": outcome.change,
        "notifications": outcome.notifications,
    }
