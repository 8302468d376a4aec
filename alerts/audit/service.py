"""Recording and reading the audit log (every change: who, when, what, before and after)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEntry

__all__ = ["list_entries", "record", "snapshot"]


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON-able picture of ``fields`` of ``obj`` (datetimes as ISO 8601)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    at: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at=at, actor=actor, action=action, entity=entity, entity_id=str(entity_id), before=before, after=after
    )
    session.add(entry)
    return entry


def list_entries(
    session: Session,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    """Entries newest first; ``since`` (inclusive) and ``until`` (exclusive) bound when they were written."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc())
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if until is not None:
        q = q.where(AuditEntry.at < until)
    if entity is not None:
        q = q.where(AuditEntry.entity == entity)
    if entity_id is not None:
        q = q.where(AuditEntry.entity_id == entity_id)
    if actor is not None:
        q = q.where(AuditEntry.actor == actor)
    return list(session.scalars(q.limit(limit).offset(offset)))
