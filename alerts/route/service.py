"""Service functions of the route domain: receivers and routes, and which route an alert takes."""

from __future__ import annotations

from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import Catalogue, Level

from ..alert.models import Alert
from ..audit import service as audit
from ..errors import Conflict, InvalidInput, NotFound
from ..inputs import check_catalogue
from .models import Receiver, Route

__all__ = [
    "DEFAULT_TEAM",
    "create_route",
    "delete_route",
    "list_receivers",
    "list_routes",
    "match_route",
    "put_receiver",
]

#: the team an alert goes to when no route matches
DEFAULT_TEAM = "duty"

RECEIVER_KINDS = ("webhook", "email")


def put_receiver(
    session: Session, *, name: str, kind: str, target: str, actor: str, now: datetime
) -> Receiver:
    """Create or replace a receiver."""
    if kind not in RECEIVER_KINDS:
        raise InvalidInput(f"must be one of {', '.join(RECEIVER_KINDS)}", field="kind")
    if kind == "webhook" and not _http_url(target):
        raise InvalidInput("a webhook target must be an http(s) URL with a host", field="target")
    if kind == "email" and not all("@" in a for a in target.split(",")):
        raise InvalidInput("an email target is a comma-separated list of addresses", field="target")
    row = session.get(Receiver, name)
    before = None if row is None else {"kind": row.kind, "target": row.target}
    if row is None:
        row = Receiver(name=name, kind=kind, target=target)
        session.add(row)
    else:
        row.kind, row.target = kind, target
    audit.record(
        session,
        actor=actor,
        action="receiver.put",
        entity="receiver",
        entity_id=name,
        at=now,
        before=before,
        after={"kind": kind, "target": target},
    )
    return row


def _http_url(target: str) -> bool:
    """Is ``target`` an http(s) URL the webhook transport can send to (scheme, host, valid port)?"""
    try:
        url = httpx.URL(target)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def list_receivers(session: Session) -> list[Receiver]:
    return list(session.scalars(select(Receiver).order_by(Receiver.name)))


def create_route(
    session: Session,
    *,
    name: str,
    team: str,
    receivers: list[str],
    actor: str,
    now: datetime,
    catalogue: Catalogue,
    position: int = 100,
    region: str | None = None,
    industry: str | None = None,
    min_level: str | None = None,
    escalation_receivers: list[str] | None = None,
) -> Route:
    """Store a route; its ``region`` (county) and ``industry``, when given, must be ``catalogue``'s."""
    if min_level is not None and min_level not in Level.__members__:
        raise InvalidInput(f"must be one of {', '.join(Level)}", field="min_level")
    check_catalogue(catalogue, county=region, industry=industry)
    if session.scalar(select(Route).where(Route.name == name)) is not None:
        raise Conflict(f"a route named {name!r} exists", field="name")
    known = {r.name for r in list_receivers(session)}
    for field, names in (("receivers", receivers), ("escalation_receivers", escalation_receivers or [])):
        missing = [n for n in names if n not in known]
        if missing:
            raise InvalidInput(f"unknown receiver(s): {', '.join(missing)}", field=field)
    row = Route(
        name=name,
        position=position,
        region=region,
        industry=industry,
        min_level=min_level,
        team=team,
        receivers=list(receivers),
        escalation_receivers=list(escalation_receivers or []),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="route.create",
        entity="route",
        entity_id=row.id,
        at=now,
        before=None,
        after={
            "name": name,
            "team": team,
            "receivers": receivers,
            "region": region,
            "industry": industry,
            "min_level": min_level,
            "position": position,
        },
    )
    return row


def delete_route(session: Session, *, route_id: int, actor: str, now: datetime) -> None:
    row = session.get(Route, route_id)
    if row is None:
        raise NotFound(f"no route with id {route_id}", field="route_id")
    audit.record(
        session,
        actor=actor,
        action="route.delete",
        entity="route",
        entity_id=route_id,
        at=now,
        before={"name": row.name, "team": row.team},
        after=None,
    )
    session.delete(row)


def list_routes(session: Session) -> list[Route]:
    return list(session.scalars(select(Route).order_by(Route.position, Route.id)))


def match_route(routes: list[Route], alert: Alert) -> Route | None:
    """The first route (by position) whose county, industry and minimum level all match."""
    for r in routes:
        if r.region is not None and r.region != alert.region:
            continue
        if r.industry is not None and r.industry != alert.industry:
            continue
        if r.min_level is not None and Level(alert.level) < Level(r.min_level):
            continue
        return r
    return None
