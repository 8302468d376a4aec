"""Tables of the incident domain: incidents, members, tasks, timeline, linked alerts and things."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, Json

__all__ = [
    "Incident",
    "IncidentAlert",
    "IncidentLink",
    "IncidentMember",
    "IncidentState",
    "IncidentTask",
    "TimelineEntry",
]


class IncidentState(StrEnum):
    reported = "reported"
    investigating = "investigating"
    controlled = "controlled"
    resolved = "resolved"
    closed = "closed"


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=IncidentState.reported.value, index=True)
    level: Mapped[str] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(16), index=True)
    commander: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class IncidentMember(Base):
    __tablename__ = "incident_members"
    __table_args__ = (UniqueConstraint("incident_id", "name", name="uq_incident_members_incident_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64), default="member")


class IncidentTask(Base):
    __tablename__ = "incident_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime]
    done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class TimelineEntry(Base):
    """One line of an incident's timeline.

    ``kind`` and ``data`` say what happened (the dashboard words it in the reader's language and zone);
    ``text`` is the same in English, kept for the API's and the audit's text readers. Entries written
    before ``data`` existed (migration 0003) have only ``text``.
    """

    __tablename__ = "incident_timeline"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)


class IncidentAlert(Base):
    __tablename__ = "incident_alerts"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)


class IncidentLink(Base):
    """A linked enterprise (unified social credit code) or product."""

    __tablename__ = "incident_links"
    __table_args__ = (UniqueConstraint("incident_id", "kind", "value", name="uq_incident_links_kind_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # enterprise | product
    value: Mapped[str] = mapped_column(String(200))
