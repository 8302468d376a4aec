"""Tables of the route domain: receivers (where notifications go) and routes (who gets what)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["Receiver", "Route"]


class Receiver(Base):
    """A named destination: a webhook URL or a list of e-mail addresses (comma-separated)."""

    __tablename__ = "receivers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook | email
    target: Mapped[str] = mapped_column(String(1024))


class Route(Base):
    """County × industry × minimum level → team and receivers; the lowest ``position`` that matches wins.

    A route with no matchers is a catch-all; ``escalation_receivers`` are told when an alert routed
    here goes unacknowledged too long.
    """

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(default=100)
    region: Mapped[str | None] = mapped_column(String(16))
    industry: Mapped[str | None] = mapped_column(String(64))
    min_level: Mapped[str | None] = mapped_column(String(8))
    team: Mapped[str] = mapped_column(String(64))
    receivers: Mapped[list[str]] = mapped_column(default=list)
    escalation_receivers: Mapped[list[str]] = mapped_column(default=list)
