"""Tables of the alert domain: alerts (one per fingerprint), received warnings, decisions, comments."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base

__all__ = ["Alert", "AlertComment", "AlertDecision", "AlertState", "Disposition", "ReceivedWarning"]


class AlertState(StrEnum):
    firing = "firing"
    acknowledged = "acknowledged"
    resolved = "resolved"


class Disposition(StrEnum):
    verified = "verified"
    transferred = "transferred"
    false_positive = "false_positive"
    handled = "handled"


class Alert(Base):
    """What a duty officer handles: every emission with one fingerprint folds into one alert."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_state_level", "state", "level"),
        Index("ix_alerts_region_industry", "region", "industry"),
        Index("ix_alerts_escalate_at", "escalate_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    detector: Mapped[str] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(16))
    industry: Mapped[str | None] = mapped_column(String(64))
    item: Mapped[str | None] = mapped_column(String(128))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=AlertState.firing.value)
    level: Mapped[str] = mapped_column(String(8))
    max_level: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]]
    last_warning_id: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(default=1)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    started_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    inhibited_by_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    silenced_by_id: Mapped[int | None] = mapped_column(ForeignKey("silences.id", ondelete="SET NULL"))
    #: the event a silence held back (``firing`` or ``level_raised``), told once no silence covers it
    held_event: Mapped[str | None] = mapped_column(String(32))
    route_id: Mapped[int | None] = mapped_column(ForeignKey("routes.id", ondelete="SET NULL"))
    team: Mapped[str | None] = mapped_column(String(64))
    receivers: Mapped[list[str]] = mapped_column(default=list)
    tier: Mapped[int] = mapped_column(default=0)
    escalate_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    #: the level acknowledged: only a level above it pages again
    acknowledged_level: Mapped[str | None] = mapped_column(String(8))
    disposition: Mapped[str | None] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReceivedWarning(Base):
    """Every warning id ever consumed: the upsert key that makes a redelivery harmless."""

    __tablename__ = "received_warnings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    raised_at: Mapped[datetime]
    received_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    alert: Mapped[Alert] = relationship(lazy="raise")


class AlertDecision(Base):
    """One pipeline stage's decision about an alert, with its reason (the alert's audit of handling)."""

    __tablename__ = "alert_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    warning_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    alert: Mapped[Alert] = relationship(lazy="raise")


class AlertComment(Base):
    __tablename__ = "alert_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
