"""The warnings consumer: ``qw.warnings`` → pipeline → database commit → offset commit → delivery.

Offsets are committed only after the database transaction that applied the batch; a crash in
between redelivers the batch, and the upsert by warning id makes that harmless. A record that is not
a valid warning the store can hold is logged with topic/partition/offset and the reason, counted, and
skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas import RiskWarning, field_errors

from .errors import InvalidInput
from .inputs import check_storable
from .pipeline import Outcome, process_batch
from .runtime import Runtime
from .settings import AlertSettings

__all__ = ["BatchResult", "apply_batch", "consumer_config", "make_consumer", "run_consumer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcomes: list[Outcome]
    rejected: int


def decode(value: bytes | str) -> RiskWarning:
    """A valid warning the store can hold, or the error that names the field."""
    warning = RiskWarning.model_validate_json(value)
    check_storable(warning)
    return warning


def apply_batch(runtime: Runtime, records: Iterable[Any]) -> BatchResult:
    """Apply consumed records in one transaction and commit it (offsets are the caller's, afterwards)."""
    rejected = 0
    now = runtime.clock.now()
    warnings: list[RiskWarning] = []
    for rec in records:
        try:
            warnings.append(decode(rec.value))
        except (ValidationError, ValueError, InvalidInput) as exc:
            errors = field_errors(exc) if isinstance(exc, ValidationError) else None
            reason = "; ".join(str(e) for e in errors) if errors else str(exc)
            log.error(
                "skipping invalid warning at %s[%s]@%s: %s", rec.topic, rec.partition, rec.offset, reason
            )
            rejected += 1
    with runtime.session() as session:
        outcomes = process_batch(session, warnings=warnings, now=now, settings=runtime.settings)
        session.commit()
    if runtime.metrics is not None:
        for o in outcomes:
            runtime.metrics.warnings.labels(o.change).inc()
        if rejected:
            runtime.metrics.warnings.labels("rejected").inc(rejected)
    return BatchResult(outcomes=outcomes, rejected=rejected)


def consumer_config(settings: AlertSettings, *, group: str, **overrides: Any) -> dict[str, Any]:
    """The kafka-python consumer configuration of ``group``: the servers and their SASL/TLS settings,
    manual commits, the profile's timings; ``overrides`` on top."""
    s = settings
    config: dict[str, Any] = {
        **s.client_kwargs(),
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": s.session_timeout_ms,
        "heartbeat_interval_ms": max(s.session_timeout_ms // 3, 100),
        "fetch_max_wait_ms": s.fetch_max_wait_ms,
        "max_poll_records": 2000,  # a bigger batch shares its reads, writes and commit among more records
    }
    config.update(overrides)
    return config


def kafka_consumer(runtime: Runtime, *, group: str, topic: str, **overrides: Any) -> Any:
    """A kafka-python consumer of ``topic`` in ``group`` (see :func:`consumer_config`)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**consumer_config(runtime.settings, group=group, **overrides))
    consumer.subscribe([topic])
    return consumer


def make_consumer(runtime: Runtime, **overrides: Any) -> Any:
    """The consumer of the warnings topic."""
    s = runtime.settings
    return kafka_consumer(runtime, group=s.consumer_group, topic=s.topic, **overrides)


def run_consumer(
    *,
    runtime: Runtime,
    stop: threading.Event,
    consumer: Any = None,
    poll_ms: int = 200,
    until: Callable[[int], bool] | None = None,
) -> int:
    """Consume until ``stop`` is set (or ``until(records seen)`` holds); returns the records seen."""
    own = consumer is None
    consumer = consumer or make_consumer(runtime)
    seen = 0
    try:
        while not stop.is_set() and (until is None or not until(seen)):
            polled = consumer.poll(timeout_ms=poll_ms)
            records = [r for part in polled.values() for r in part]
            if not records:
                continue
            result = apply_batch(runtime, records)  # database commit first ...
            consumer.commit()  # ... then the offsets
            seen += len(records)
            if any(o.notifications for o in result.outcomes):
                runtime.deliver()
    finally:
        if own:
            consumer.close()
    return seen
