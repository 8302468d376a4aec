"""Tables of the notification domain: one row per message owed, one per attempt to deliver it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["Notification", "NotificationAttempt", "NotificationStatus"]


class NotificationStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"


class Notification(Base):
    """A message owed to one receiver about one alert event (an outbox row, written with the alert).

    ``key`` is unique (alert, event, receiver), so the same event can never be owed twice.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("key", name="uq_notifications_key"),
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))  # firing | level_raised | escalated | resolved
    receiver: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.pending.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    ok: Mapped[bool]
    retryable: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
