"""Tokens and permissions: issue, authenticate, and decide what a principal may see and do.

A token is 32 random bytes (URL-safe text); only its SHA-256 digest is stored. Permissions are
per role; a county-scoped principal sees alerts and incidents of its county (and prefecture-wide
ones, read only; an incident of several counties only if one is its own) and acts only on its county's.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import Catalogue

from ..audit import service as audit
from ..errors import Forbidden, InvalidInput, Unauthorized
from ..inputs import check_catalogue
from .models import Role, Token

__all__ = [
    "PERMISSIONS",
    "Principal",
    "authenticate",
    "check_county",
    "create_token",
    "digest",
    "require",
    "revoke_token",
]

#: what each role may do
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.inspector: frozenset({"alerts:read"}),
    Role.duty_officer: frozenset(
        {"alerts:read", "alerts:act", "silences:read", "silences:write", "incidents:read", "incidents:write"}
    ),
    Role.responder: frozenset({"alerts:read", "incidents:read", "incidents:write"}),
    Role.admin: frozenset(
        {
            "alerts:read",
            "alerts:act",
            "silences:read",
            "silences:write",
            "incidents:read",
            "incidents:write",
            "routes:write",
            "routes:read",
            "tokens:write",
            "audit:read",
            "warnings:write",
        }
    ),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name, role and optional county scope."""

    name: str
    role: Role
    county: str | None = None

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session,
    *,
    name: str,
    role: Role | str,
    county: str | None,
    now: datetime,
    catalogue: Catalogue,
    actor: str = "system",
) -> tuple[Token, str]:
    """Issue a token; returns the row and the clear text, which is shown once and never stored.

    ``county`` (the token's scope) must be one of ``catalogue``'s."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"must be one of {', '.join(r.value for r in Role)}", field="role") from None
    if not name.strip():
        raise InvalidInput("must not be empty", field="name")
    check_catalogue(catalogue, county=county)
    clear = secrets.token_urlsafe(32)
    row = Token(name=name, digest=digest(clear), role=role.value, county=county, created_at=now)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.create",
        entity="token",
        entity_id=row.id,
        at=now,
        after={"name": name, "role": role.value, "county": county},
    )
    return row, clear


def revoke_token(session: Session, *, token_id: int, now: datetime, actor: str) -> Token:
    row = session.get(Token, token_id)
    if row is None:
        from ..errors import NotFound

        raise NotFound(f"no token with id {token_id}", field="token_id")
    row.revoked_at = now
    audit.record(
        session,
        actor=actor,
        action="token.revoke",
        entity="token",
        entity_id=row.id,
        at=now,
        before={"revoked_at": None},
        after={"revoked_at": now.isoformat()},
    )
    return row


def authenticate(session: Session, *, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer …`` header, or :class:`Unauthorized`."""
    if not authorization:
        raise Unauthorized("missing bearer token", field="Authorization")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected 'Bearer <token>'", field="Authorization")
    row = session.scalar(select(Token).where(Token.digest == digest(token.strip())))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked token", field="Authorization")
    return Principal(name=row.name, role=Role(row.role), county=row.county)


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise Forbidden(f"role {principal.role.value!r} may not {permission.replace(':', ' ')}", field="role")


def check_county(principal: Principal, region: str | None, *, acting: bool, what: str) -> None:
    """Refuse a county-scoped principal another county's record (or acting on a prefecture-wide one)."""
    if principal.county is None:
        return
    if region == principal.county:
        return
    if region is None and not acting:
        return
    where = f"county {region}" if region else "the whole prefecture"
    raise Forbidden(
        f"{what} belongs to {where}; token is scoped to county {principal.county}", field="county"
    )
