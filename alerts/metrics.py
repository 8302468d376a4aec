"""Prometheus metrics: alerts by state and level (read from the store at scrape time),
notifications sent/failed by receiver, and time to acknowledge.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .alert.models import Alert
from .notification.models import Notification

__all__ = ["Metrics"]

ACK_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 4 * 3600, 8 * 3600, 24 * 3600)


class _AlertCollector(Collector):
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("qw_alerts", "Alerts by state and current level", labels=["state", "level"])
        pending = GaugeMetricFamily("qw_notifications_pending", "Notifications waiting to be delivered")
        with self._sessions() as session:
            rows = session.execute(
                select(Alert.state, Alert.level, func.count()).group_by(Alert.state, Alert.level)
            )
            for state, level, n in rows:
                gauge.add_metric([state, level], n)
            pending.add_metric(
                [],
                session.scalar(
                    select(func.count()).select_from(Notification).where(Notification.status == "pending")
                )
                or 0,
            )
        yield gauge
        yield pending


class Metrics:
    """One registry per service (tests build many)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_AlertCollector(session_factory))
        self.notifications = Counter(
            "qw_notifications",
            "Notification attempts by receiver and result",
            ["receiver", "result"],
            registry=self.registry,
        )
        self.time_to_ack = Histogram(
            "qw_time_to_acknowledge_seconds",
            "From an alert starting to its acknowledgement",
            ["level"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.warnings = Counter(
            "qw_warnings_consumed", "Warnings consumed by outcome", ["change"], registry=self.registry
        )

    def notification_result(self, n: Notification) -> None:
        result = {"sent": "sent", "failed": "failed"}.get(n.status, "retrying")
        self.notifications.labels(n.receiver, result).inc()

    def acknowledged(self, alert: Alert) -> None:
        if alert.acknowledged_at is not None:
            self.time_to_ack.labels(alert.level).observe(
                (alert.acknowledged_at - alert.started_at).total_seconds()
            )
