"""Service functions of the silence domain: create, list, expire, and find the silence that mutes an alert."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import Catalogue, Level, WarningKind

from ..alert.models import Alert, AlertState
from ..alert.service import alert_dict
from ..audit import service as audit
from ..auth.service import Principal, check_county
from ..errors import InvalidInput, NotFound
from ..events import emit, of_county
from ..inputs import check_catalogue
from .models import Silence

__all__ = [
    "AUDITED",
    "active_silences",
    "create_silence",
    "expire_silence",
    "list_silences",
    "matching_silence",
]

AUDITED = ("kind", "region", "industry", "item", "level", "starts_at", "ends_at", "author", "reason")


def create_silence(
    session: Session,
    *,
    principal: Principal,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    now: datetime,
    catalogue: Catalogue,
    kind: str | None = None,
    region: str | None = None,
    industry: str | None = None,
    item: str | None = None,
    level: str | None = None,
) -> Silence:
    """Store a silence; its ``region`` (county) and ``industry`` matchers, when given, must be
    ``catalogue``'s. A county-scoped principal's silence without a county is for its county.
    One active from now marks the open alerts it covers as silenced (``silenced_by_id``)."""
    if ends_at <= starts_at:
        raise InvalidInput("must be after starts_at", field="ends_at")
    if ends_at <= now:
        raise InvalidInput("is already in the past", field="ends_at")
    if not reason.strip():
        raise InvalidInput("a silence needs a reason", field="reason")
    if kind is not None and kind not in WarningKind.__members__:
        raise InvalidInput(f"must be one of {', '.join(WarningKind)}", field="kind")
    if level is not None and level not in Level.__members__:
        raise InvalidInput(f"must be one of {', '.join(Level)}", field="level")
    check_catalogue(catalogue, county=region, industry=industry)
    if principal.county is not None:
        if region is None:
            region = principal.county
        check_county(principal, region, acting=True, what="the silence")
    row = Silence(
        kind=kind,
        region=region,
        industry=industry,
        item=item,
        level=level,
        starts_at=starts_at,
        ends_at=ends_at,
        author=principal.name,
        reason=reason,
        created_at=now,
    )
    session.add(row)
    session.flush()
    if starts_at <= now:
        _hold(session, row, now=now)
    audit.record(
        session,
        actor=principal.name,
        action="silence.create",
        entity="silence",
        entity_id=row.id,
        at=now,
        before=None,
        after=audit.snapshot(row, AUDITED),
    )
    return row


def expire_silence(session: Session, *, silence_id: int, principal: Principal, now: datetime) -> Silence:
    """End a silence now. The alerts it held are no longer shown as silenced, and one whose escalation
    it held back until its old end escalates at the next tick (another active silence may still hold it)."""
    row = session.get(Silence, silence_id)
    if row is None:
        raise NotFound(f"no silence with id {silence_id}", field="silence_id")
    check_county(principal, row.region, acting=True, what=f"silence {silence_id}")
    before = audit.snapshot(row, AUDITED)
    if row.ends_at > now:
        _release(session, row, now=now)
        row.ends_at = max(now, row.starts_at)
    audit.record(
        session,
        actor=principal.name,
        action="silence.expire",
        entity="silence",
        entity_id=row.id,
        at=now,
        before=before,
        after=audit.snapshot(row, AUDITED),
    )
    return row


def _hold(session: Session, silence: Silence, *, now: datetime) -> None:
    """Mark the open alerts a silence active from now covers (and no other holds) as silenced by it."""
    q = select(Alert).where(Alert.state != AlertState.resolved.value, Alert.silenced_by_id.is_(None))
    for column, want in (
        (Alert.kind, silence.kind),
        (Alert.region, silence.region),
        (Alert.industry, silence.industry),
        (Alert.item, silence.item),
    ):
        if want is not None:
            q = q.where(column == want)
    for alert in session.scalars(q):
        if _matches(silence, alert):
            alert.silenced_by_id = silence.id
            alert.updated_at = now
            emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))


def _release(session: Session, silence: Silence, *, now: datetime) -> None:
    for alert in session.scalars(select(Alert).where(Alert.silenced_by_id == silence.id)):
        alert.silenced_by_id = None
        held = alert.state == AlertState.firing and alert.escalate_at == silence.ends_at
        if held:  # the escalation tick had moved its timer to the silence's end
            alert.escalate_at = now
        alert.updated_at = now
        emit(session, "alert.updated", counties=of_county(alert.region), data=alert_dict(alert))


def list_silences(
    session: Session, *, now: datetime, active_only: bool = False, principal: Principal | None = None
) -> list[Silence]:
    """Newest first; a county-scoped ``principal`` sees its county's silences and prefecture-wide ones."""
    q = select(Silence).order_by(Silence.id.desc())
    if active_only:
        q = q.where(Silence.starts_at <= now, Silence.ends_at > now)
    if principal is not None and principal.county is not None:
        q = q.where((Silence.region == principal.county) | Silence.region.is_(None))
    return list(session.scalars(q))


def active_silences(session: Session, *, now: datetime) -> list[Silence]:
    return list_silences(session, now=now, active_only=True)


def _matches(silence: Silence, alert: Alert) -> bool:
    if silence.level is not None and Level(alert.level) > Level(silence.level):
        return False
    return all(
        want is None or want == have
        for want, have in (
            (silence.kind, alert.kind),
            (silence.region, alert.region),
            (silence.industry, alert.industry),
            (silence.item, alert.item),
        )
    )


def matching_silence(silences: list[Silence], alert: Alert, *, now: datetime) -> Silence | None:
    """The first silence active at ``now`` whose matchers all match ``alert`` (expired ones never match)."""
    for s in silences:
        if s.starts_at <= now < s.ends_at and _matches(s, alert):
            return s
    return None
