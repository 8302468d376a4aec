"""HTTP views of the auth domain: who am I, and token issue/revoke (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..deps import Cat, Id, Now, Sess, caller
from . import service
from .models import Role
from .service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["auth"])


class TokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role
    county: str | None = Field(default=None, max_length=16)


@router.get("/me")
def me(principal: Annotated[Principal, Depends(caller("alerts:read"))]) -> dict[str, Any]:
    return {
        "name": principal.name,
        "role": principal.role.value,
        "county": principal.county,
        "permissions": sorted(service.PERMISSIONS[principal.role]),
    }


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenBody,
    session: Sess,
    principal: Annotated[Principal, Depends(caller("tokens:write"))],
    now: Now,
    cat: Cat,
) -> dict[str, Any]:
    """Issue a token (its ``county``, if any, one of the catalogue's); the clear text is shown once."""
    row, clear = service.create_token(
        session,
        name=body.name,
        role=body.role,
        county=body.county,
        now=now,
        catalogue=cat,
        actor=principal.name,
    )
    session.commit()
    return {"id": row.id, "name": row.name, "role": row.role, "county": row.county, "token": clear}


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: Id, session: Sess, principal: Annotated[Principal, Depends(caller("tokens:write"))], now: Now
) -> dict[str, Any]:
    row = service.revoke_token(session, token_id=token_id, now=now, actor=principal.name)
    session.commit()
    return {"id": row.id, "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}
