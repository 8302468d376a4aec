"""Service functions of the notification domain: owe a message (outbox row) and deliver what is due.

Owing happens in the same transaction as the alert change, keyed so one event is never owed twice;
delivery runs after the commit, records every attempt, retries retryable failures with exponential
backoff and marks the rest failed: nothing is dropped silently.

Several rounds may deliver at once (the tick loop, the consumer, API requests, other replicas): a round
first claims a notification (moves its next attempt a lease ahead, only if it is still due) and commits
that before sending, so two rounds never send the same message; one that dies mid-send leaves its claim
to expire and the message is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ..alert.models import Alert
from ..route.models import Receiver
from .models import Notification, NotificationAttempt, NotificationStatus
from .notifiers import DeliveryError, Notifier
from .payload import webhook_payload

__all__ = ["DeliveryReport", "deliver_due", "list_notifications", "owe"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def owe(
    session: Session,
    *,
    alert: Alert,
    event: str,
    receivers: list[str],
    key: str,
    warning: dict[str, Any] | None,
    external_url: str,
    now: datetime,
    escalation: dict[str, Any] | None = None,
) -> list[Notification]:
    """One pending notification per receiver; a key already owed is skipped (idempotent).

    ``escalation`` (step, tiers, reason, unacknowledged_since) goes with an ``escalated`` event."""
    keys = [f"{key}:{r}" for r in receivers]
    existing = (
        set(session.scalars(select(Notification.key).where(Notification.key.in_(keys)))) if keys else set()
    )
    rows = []
    for receiver, k in zip(receivers, keys, strict=True):
        if k in existing:
            continue
        payload = webhook_payload(
            alert=alert,
            warning=warning,
            event=event,
            receiver=receiver,
            external_url=external_url,
            escalation=escalation,
        )
        row = Notification(
            key=k,
            alert_id=alert.id,
            event=event,
            receiver=receiver,
            status=NotificationStatus.pending.value,
            attempts=0,
            next_attempt_at=now,
            payload=payload,
            created_at=now,
        )
        session.add(row)
        rows.append(row)
    return rows


def deliver_due(
    session: Session,
    *,
    notifiers: Mapping[str, Notifier],
    now: datetime,
    max_attempts: int,
    backoff_s: float,
    limit: int = 100,
    on_result: Any = None,
    lease_s: float = 300.0,
) -> DeliveryReport:
    """Attempt every pending notification due at ``now`` that this round claims; commits after each attempt.

    ``lease_s`` (longer than any transport's timeout) is how long a claim keeps other rounds off a message.
    """
    report = DeliveryReport()
    due = list(
        session.scalars(
            select(Notification)
            .where(
                Notification.status == NotificationStatus.pending.value, Notification.next_attempt_at <= now
            )
            .order_by(Notification.id)
            .limit(limit)
        )
    )
    for n in due:
        claim = (
            update(Notification)
            .where(
                Notification.id == n.id,
                Notification.status == NotificationStatus.pending.value,
                Notification.next_attempt_at <= now,
            )
            .values(attempts=Notification.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        claimed = cast(CursorResult[Any], session.execute(claim)).rowcount
        session.commit()
        if not claimed:
            continue  # another round has it
        session.refresh(n)
        receiver = session.get(Receiver, n.receiver)
        try:
            if receiver is None:
                raise DeliveryError(f"receiver {n.receiver!r} is not configured", retryable=False)
            notifier = notifiers.get(receiver.kind)
            if notifier is None:
                raise DeliveryError(f"no transport for receiver kind {receiver.kind!r}", retryable=False)
            try:
                notifier.send(target=receiver.target, payload=n.payload)
            except DeliveryError:
                raise
            except Exception as exc:  # a transport's own bug must not hold up the notifications behind it
                log.exception("receiver %r: unexpected error delivering notification %s", n.receiver, n.id)
                raise DeliveryError(
                    f"receiver {n.receiver!r}: unexpected {exc.__class__.__name__}: {exc}", retryable=False
                ) from exc
        except DeliveryError as exc:
            session.add(
                NotificationAttempt(
                    notification_id=n.id, at=now, ok=False, retryable=exc.retryable, error=str(exc)
                )
            )
            n.last_error = str(exc)
            if exc.retryable and n.attempts < max_attempts:
                n.next_attempt_at = now + timedelta(seconds=backoff_s * 2 ** (n.attempts - 1))
                report.retrying += 1
            else:
                n.status = NotificationStatus.failed.value
                n.next_attempt_at = None
                report.failed += 1
        else:
            session.add(
                NotificationAttempt(notification_id=n.id, at=now, ok=True, retryable=False, error=None)
            )
            n.status = NotificationStatus.sent.value
            n.sent_at = now
            n.next_attempt_at = None
            report.sent += 1
        session.commit()
        if on_result is not None:
            on_result(n)
    return report


def list_notifications(
    session: Session, *, alert_id: int | None = None, status: str | None = None
) -> list[Notification]:
    q = select(Notification).order_by(Notification.id)
    if alert_id is not None:
        q = q.where(Notification.alert_id == alert_id)
    if status is not None:
        q = q.where(Notification.status == status)
    return list(session.scalars(q))
