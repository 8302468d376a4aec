"""HTTP views of the silence domain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from schemas import Level, WarningKind

from ..audit.service import snapshot
from ..auth.service import Principal
from ..deps import Cat, Id, Now, Sess, caller
from ..inputs import UtcDatetime
from . import service

__all__ = ["router"]

router = APIRouter(prefix="/api/silences", tags=["silences"])

Reader = Annotated[Principal, Depends(caller("silences:read"))]
Writer = Annotated[Principal, Depends(caller("silences:write"))]


class SilenceBody(BaseModel):
    kind: WarningKind | None = None
    county: str | None = Field(default=None, max_length=16)
    industry: str | None = Field(default=None, max_length=64)
    item: str | None = Field(default=None, max_length=128)
    level: Level | None = Field(default=None, description="matches this level and below")
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    reason: str = Field(min_length=1, max_length=2000)


def _out(row: Any) -> dict[str, Any]:
    return {"id": row.id, **snapshot(row, service.AUDITED)}


@router.get("")
def list_silences(session: Sess, principal: Reader, now: Now, active: bool = False) -> list[dict[str, Any]]:
    return [_out(s) for s in service.list_silences(session, now=now, active_only=active, principal=principal)]


@router.post("", status_code=201)
def create_silence(body: SilenceBody, session: Sess, principal: Writer, now: Now, cat: Cat) -> dict[str, Any]:
    """Silence what matches every matcher given (``county`` and ``industry`` of the catalogue)."""
    row = service.create_silence(
        session,
        principal=principal,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        now=now,
        catalogue=cat,
        kind=body.kind,
        region=body.county,
        industry=body.industry,
        item=body.item,
        level=body.level,
    )
    session.commit()
    return _out(row)


@router.delete("/{silence_id}")
def expire_silence(silence_id: Id, session: Sess, principal: Writer, now: Now) -> dict[str, Any]:
    row = service.expire_silence(session, silence_id=silence_id, principal=principal, now=now)
    session.commit()
    return _out(row)
