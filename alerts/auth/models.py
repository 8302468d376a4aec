"""Table of the auth domain: bearer tokens, stored only as their SHA-256 digest."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["Role", "Token"]


class Role(StrEnum):
    inspector = "inspector"
    duty_officer = "duty_officer"
    responder = "responder"
    admin = "admin"


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    county: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
