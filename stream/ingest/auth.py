"""Who is pushing: the principal behind a bearer token, and who may push records.

The ingest router does not know how tokens are stored; it is given a verifier,
``verify(token) -> Principal | None``, by whoever assembles the server (the front door wires the
alert service's token store in). :func:`static_verifier` serves tests and single-user setups.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["PUSH_ROLES", "Principal", "Verifier", "static_verifier"]

#: roles whose tokens may push records (an inspector's token may only push)
PUSH_ROLES = frozenset({"inspector", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of a token: a name for the audit trail, a role and an optional county scope."""

    name: str
    role: str
    region: str | None = None


Verifier = Callable[[str], Principal | None]


def static_verifier(tokens: Mapping[str, Principal]) -> Verifier:
    """A verifier over a fixed token -> principal mapping (compared in constant time)."""
    items = [(token.encode("utf-8"), principal) for token, principal in tokens.items()]

    def verify(token: str) -> Principal | None:
        given = token.encode("utf-8")
        found = None
        for known, principal in items:
            if hmac.compare_digest(known, given):
                found = principal
        return found

    return verify
