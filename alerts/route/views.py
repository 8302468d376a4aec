"""HTTP views of the route domain (receivers and routes; admin only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from schemas import Level

from ..auth.service import Principal
from ..deps import Cat, Id, Now, Sess, caller
from . import service

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["routes"])

Reader = Annotated[Principal, Depends(caller("routes:read"))]
Admin = Annotated[Principal, Depends(caller("routes:write"))]


class ReceiverBody(BaseModel):
    kind: Literal["webhook", "email"]
    target: str = Field(min_length=1, max_length=1024)


class RouteBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    team: str = Field(min_length=1, max_length=64)
    receivers: list[str] = Field(default_factory=list)
    escalation_receivers: list[str] = Field(default_factory=list)
    position: int = Field(default=100, ge=0, le=1_000_000)
    county: str | None = Field(default=None, max_length=16)
    industry: str | None = Field(default=None, max_length=64)
    min_level: Level | None = None


def _route(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "position": r.position,
        "county": r.region,
        "industry": r.industry,
        "min_level": r.min_level,
        "team": r.team,
        "receivers": r.receivers,
        "escalation_receivers": r.escalation_receivers,
    }


@router.get("/receivers")
def list_receivers(session: Sess, principal: Reader) -> list[dict[str, str]]:
    return [{"name": r.name, "kind": r.kind, "target": r.target} for r in service.list_receivers(session)]


@router.put("/receivers/{name}")
def put_receiver(name: str, body: ReceiverBody, session: Sess, principal: Admin, now: Now) -> dict[str, str]:
    row = service.put_receiver(
        session, name=name, kind=body.kind, target=body.target, actor=principal.name, now=now
    )
    session.commit()
    return {"name": row.name, "kind": row.kind, "target": row.target}


@router.get("/routes")
def list_routes(session: Sess, principal: Reader) -> list[dict[str, Any]]:
    return [_route(r) for r in service.list_routes(session)]


@router.post("/routes", status_code=201)
def create_route(body: RouteBody, session: Sess, principal: Admin, now: Now, cat: Cat) -> dict[str, Any]:
    """Route what matches ``county``, ``industry`` (of the catalogue) and ``min_level``, when given."""
    row = service.create_route(
        session,
        name=body.name,
        team=body.team,
        receivers=body.receivers,
        actor=principal.name,
        now=now,
        catalogue=cat,
        position=body.position,
        region=body.county,
        industry=body.industry,
        min_level=body.min_level,
        escalation_receivers=body.escalation_receivers,
    )
    session.commit()
    return _route(row)


@router.delete("/routes/{route_id}", status_code=204)
def delete_route(route_id: Id, session: Sess, principal: Admin, now: Now) -> None:
    service.delete_route(session, route_id=route_id, actor=principal.name, now=now)
    session.commit()
