"""Table of the silence domain: matchers, validity window, author and reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["Silence"]


class Silence(Base):
    """Mutes notifications of matching alerts between ``starts_at`` and ``ends_at``.

    A null matcher matches anything; ``level`` matches that level and below (a silence on yellow
    noise never hides a red alert).
    """

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str | None] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    industry: Mapped[str | None] = mapped_column(String(64))
    item: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[str | None] = mapped_column(String(8))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
