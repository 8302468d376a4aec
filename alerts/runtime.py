"""What a running alert service holds: settings, catalogue, store, clock, change feed and transports.

The catalogue is loaded once, when the runtime is built, from ``settings.catalogue_path``
(``QW_CATALOGUE_PATH``; unset, the packaged one); the views (``alerts.deps``) and the consumers take it
from here.

``Runtime.tick()`` is the periodic work (escalation timers, then due notifications); the server
calls it every ``tick_interval_s`` and tests call it after moving a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, object_session, sessionmaker

from schemas import Catalogue, load_catalogue

from .alert.models import Alert
from .clock import Clock, SystemClock
from .db import make_engine, make_session_factory, migrate
from .escalation import tick as escalation_tick
from .events import EventBus, of_county
from .metrics import Metrics
from .notification.models import Notification
from .notification.notifiers import EmailNotifier, Notifier, WebhookNotifier
from .notification.service import DeliveryReport, deliver_due
from .settings import AlertSettings

__all__ = ["Runtime", "build_runtime", "default_notifiers"]


def default_notifiers(
    settings: AlertSettings, *, transport: httpx.BaseTransport | None = None
) -> dict[str, Notifier]:
    client = httpx.Client(timeout=settings.webhook_timeout_s, transport=transport)
    catalogue = load_catalogue(settings.catalogue_path)
    return {
        "webhook": WebhookNotifier(client, secret=settings.webhook_secret.get_secret_value()),
        "email": EmailNotifier(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_user else None,
            timeout=settings.smtp_timeout_s,
            zone=catalogue.zone,  # the times a person reads
            catalogue=catalogue,  # the county and industry names
        ),
    }


@dataclass
class Runtime:
    settings: AlertSettings
    session_factory: sessionmaker[Session]
    clock: Clock = field(default_factory=SystemClock)
    bus: EventBus = field(default_factory=EventBus)
    notifiers: Mapping[str, Notifier] = field(default_factory=dict)
    metrics: Metrics | None = None
    #: the reference catalogue of ``settings.catalogue_path``, loaded once
    catalogue: Catalogue = field(init=False)

    def __post_init__(self) -> None:
        self.catalogue = load_catalogue(self.settings.catalogue_path)
        self.session_factory.kw.setdefault("info", {})["bus"] = self.bus
        if self.metrics is None:
            self.metrics = Metrics(self.session_factory)

    def session(self) -> Session:
        return self.session_factory()

    def deliver(self) -> DeliveryReport:
        """Send every notification due now (after the transaction that owed it has committed)."""
        with self.session() as session:
            return deliver_due(
                session,
                notifiers=self.notifiers,
                now=self.clock.now(),
                max_attempts=self.settings.notify_max_attempts,
                backoff_s=self.settings.notify_backoff_s,
                on_result=self._count,
            )

    def _count(self, n: Notification) -> None:
        assert self.metrics is not None
        self.metrics.notification_result(n)
        session = object_session(n)  # the delivery's own, its attempt committed
        assert session is not None
        alert = session.get(Alert, n.alert_id)
        region = alert.region if alert is not None else None
        self.bus.publish(  # told to the readers of its alert
            "notification.updated",
            of_county(region),
            {"id": n.id, "alert_id": n.alert_id, "status": n.status},
        )

    def tick(self) -> tuple[list[int], DeliveryReport]:
        with self.session() as session:
            escalated = escalation_tick(session, now=self.clock.now(), settings=self.settings)
            session.commit()
        return escalated, self.deliver()


def build_runtime(
    settings: AlertSettings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
    run_migrations: bool = True,
    **kwargs: Any,
) -> Runtime:
    engine = engine or make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    return Runtime(
        settings=settings,
        session_factory=make_session_factory(engine),
        clock=clock or SystemClock(),
        notifiers=notifiers if notifiers is not None else default_notifiers(settings),
        **kwargs,
    )
