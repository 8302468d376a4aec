"""HTTP views of the incident domain."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..auth.service import Principal
from ..deps import MAX_ID, Id, Now, Offset, Sess, caller
from ..inputs import UtcDatetime
from . import service
from .models import IncidentState

__all__ = ["router"]

router = APIRouter(prefix="/api/incidents", tags=["incidents"])

Reader = Annotated[Principal, Depends(caller("incidents:read"))]
Writer = Annotated[Principal, Depends(caller("incidents:write"))]


class OpenBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    alert_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1)
    commander: str | None = Field(default=None, max_length=64)


class StateBody(BaseModel):
    state: IncidentState
    summary: str | None = Field(default=None, max_length=10_000)
    note: str | None = Field(default=None, max_length=2000)


class CommanderBody(BaseModel):
    commander: str = Field(min_length=1, max_length=64)


class MemberBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: str = Field(default="member", min_length=1, max_length=64)


class TaskBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=64)
    due_at: UtcDatetime


class AlertLinkBody(BaseModel):
    alert_id: int = Field(ge=1, le=MAX_ID)


class LinkBody(BaseModel):
    kind: Literal["enterprise", "product"]
    value: str = Field(min_length=1, max_length=200)


def _detail(session: Sess, inc: Any) -> dict[str, Any]:
    return service.incident_detail(session, incident=inc)


@router.get("")
def list_incidents(
    session: Sess,
    principal: Reader,
    state: IncidentState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows, total = service.list_incidents(
        session, principal=principal, state=state, limit=limit, offset=offset
    )
    items = [
        {
            "id": i.id,
            "title": i.title,
            "state": i.state,
            "level": i.level,
            "county": i.region,
            "commander": i.commander,
            "updated_at": i.updated_at.isoformat(),
        }
        for i in rows
    ]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("", status_code=201)
def open_incident(body: OpenBody, session: Sess, principal: Writer, now: Now) -> dict[str, Any]:
    inc = service.open_incident(
        session,
        principal=principal,
        title=body.title,
        alert_ids=body.alert_ids,
        now=now,
        commander=body.commander,
    )
    session.commit()
    return _detail(session, inc)


@router.get("/{incident_id}")
def get_incident(incident_id: Id, session: Sess, principal: Reader) -> dict[str, Any]:
    return _detail(session, service.get_incident(session, incident_id=incident_id, principal=principal))


@router.post("/{incident_id}/state")
def change_state(
    incident_id: Id, body: StateBody, session: Sess, principal: Writer, now: Now
) -> dict[str, Any]:
    inc = service.change_state(
        session,
        incident_id=incident_id,
        principal=principal,
        state=body.state,
        now=now,
        summary=body.summary,
        note=body.note,
    )
    session.commit()
    return _detail(session, inc)


@router.post("/{incident_id}/commander")
def set_commander(
    incident_id: Id, body: CommanderBody, session: Sess, principal: Writer, now: Now
) -> dict[str, Any]:
    inc = service.set_commander(
        session, incident_id=incident_id, principal=principal, commander=body.commander, now=now
    )
    session.commit()
    return _detail(session, inc)


@router.post("/{incident_id}/members", status_code=201)
def add_member(
    incident_id: Id, body: MemberBody, session: Sess, principal: Writer, now: Now
) -> dict[str, Any]:
    service.add_member(
        session, incident_id=incident_id, principal=principal, name=body.name, role=body.role, now=now
    )
    session.commit()
    return _detail(session, service.get_incident(session, incident_id=incident_id))


@router.post("/{incident_id}/tasks", status_code=201)
def add_task(incident_id: Id, body: TaskBody, session: Sess, principal: Writer, now: Now) -> dict[str, Any]:
    task = service.add_task(
        session,
        incident_id=incident_id,
        principal=principal,
        title=body.title,
        owner=body.owner,
        due_at=body.due_at,
        now=now,
    )
    session.commit()
    return {
        "id": task.id,
        "title": task.title,
        "owner": task.owner,
        "due_at": task.due_at.astimezone(UTC).isoformat(),  # in UTC, as reading the incident answers it
        "done": task.done,
    }


@router.post("/{incident_id}/tasks/{task_id}/done")
def complete_task(incident_id: Id, task_id: Id, session: Sess, principal: Writer, now: Now) -> dict[str, Any]:
    task = service.complete_task(
        session, incident_id=incident_id, task_id=task_id, principal=principal, now=now
    )
    session.commit()
    return {"id": task.id, "done": task.done}


@router.post("/{incident_id}/alerts")
def link_alert(
    incident_id: Id, body: AlertLinkBody, session: Sess, principal: Writer, now: Now
) -> dict[str, Any]:
    inc = service.link_alert(
        session, incident_id=incident_id, principal=principal, alert_id=body.alert_id, now=now
    )
    session.commit()
    return _detail(session, inc)


@router.post("/{incident_id}/links")
def link(incident_id: Id, body: LinkBody, session: Sess, principal: Writer, now: Now) -> dict[str, Any]:
    inc = service.link(
        session, incident_id=incident_id, principal=principal, kind=body.kind, value=body.value, now=now
    )
    session.commit()
    return _detail(session, inc)
