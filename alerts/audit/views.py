"""HTTP views of the audit domain (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ..auth.service import Principal
from ..deps import Offset, Sess, caller
from ..inputs import UtcDatetime
from . import service

__all__ = ["router"]

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def list_audit(
    session: Sess,
    principal: Annotated[Principal, Depends(caller("audit:read"))],
    entity: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    rows = service.list_entries(
        session,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "before": e.before,
            "after": e.after,
        }
        for e in rows
    ]
