"""Prometheus metrics of ingest: rows decided by county and industry, and the outbox backlog.

* ``qw_ingest_records_total{kind,county,industry,outcome}`` — every row ingest decided (accepted /
  duplicate / rejected), counted where the rows are decided (:mod:`.service`), so the HTTP API and
  ``qualitywatch import`` both count. County and industry are the catalogue's code and slug; a value
  the catalogue does not know is ``unknown`` (label values never come from free text);
* ``qw_ingest_outbox_pending`` and ``qw_ingest_outbox_oldest_pending_seconds`` — accepted records not
  yet acknowledged by the broker, read from the store at scrape time (:class:`OutboxCollector`).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schemas import Catalogue

from .models import OutboxRecord

__all__ = ["RECORDS", "OutboxCollector", "ingest_registry", "observe_rows"]

UNKNOWN = "unknown"

#: rows decided, process-wide (registered into each server's registry by :func:`ingest_registry`)
RECORDS = Counter(
    "qw_ingest_records",
    "Rows decided by ingest, by kind, county, industry and outcome",
    ["kind", "county", "industry", "outcome"],
    registry=None,
)


def _county(data: Any, catalogue: Catalogue) -> str:
    value = data.get("region")
    if not isinstance(value, str):
        return UNKNOWN
    if catalogue.region(value) is not None:
        return value
    return catalogue.resolve_region(value) or UNKNOWN


def _industry(data: Any, catalogue: Catalogue) -> str:
    value = data.get("industry")
    if not isinstance(value, str):
        return UNKNOWN
    if catalogue.industry(value) is not None:
        return value
    return catalogue.resolve_industry(value) or UNKNOWN


def observe_rows(kind: str, rows: Sequence[Any], outcomes: Sequence[Any], catalogue: Catalogue) -> None:
    """Count ``outcomes`` (one per row of ``rows``, same order) by county, industry and outcome."""
    tally: Tally[tuple[str, str, str]] = Tally()
    for raw, outcome in zip(rows, outcomes, strict=False):
        data = raw.data
        if isinstance(data, dict):
            tally[(_county(data, catalogue), _industry(data, catalogue), outcome.status)] += 1
        else:
            tally[(UNKNOWN, UNKNOWN, outcome.status)] += 1
    for (county, industry, status), n in tally.items():
        RECORDS.labels(kind, county, industry, status).inc(n)


class OutboxCollector(Collector):
    """The outbox backlog, counted in the store when Prometheus scrapes."""

    def __init__(self, session_factory: Callable[[], Session], clock: Callable[[], datetime] | None = None):
        self._sessions = session_factory
        self._clock = clock or (lambda: datetime.now(UTC))

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "qw_ingest_outbox_pending", "Accepted records not yet acknowledged by the broker"
        )
        oldest = GaugeMetricFamily(
            "qw_ingest_outbox_oldest_pending_seconds",
            "Age of the oldest record waiting in the outbox (0 when it is empty)",
        )
        with self._sessions() as session:
            n, first = session.execute(
                select(func.count(), func.min(OutboxRecord.created_at)).where(
                    OutboxRecord.relayed_at.is_(None)
                )
            ).one()
        if first is not None and first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        pending.add_metric([], int(n or 0))
        oldest.add_metric([], max(0.0, (self._clock() - first).total_seconds()) if first else 0.0)
        yield pending
        yield oldest


def ingest_registry(session_factory: Callable[[], Session]) -> CollectorRegistry:
    """A registry for one ingest server: the row counter and the outbox backlog of its store."""
    registry = CollectorRegistry()
    registry.register(RECORDS)
    registry.register(OutboxCollector(session_factory))
    return registry
