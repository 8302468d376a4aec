"""The cell-weeks consumer: the stream's closed (county, industry) weeks → ``cell_stats``.

Reads the stream's internal ``cell-weeks`` topic with kafka-python in a consumer group of its own,
upserts each week by (county, industry, week) in one transaction per batch, and commits the offsets
only after that transaction has committed: a crash in between redelivers the batch, and the upsert
makes the redelivery harmless. The stream writes every cell-week to every partition of the topic; the
copies collapse into one row. A message that is not a valid cell-week is logged with its
topic/partition/offset and the reason, and skipped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidInput
from ..runtime import Runtime
from .service import CellWeekIn, record_cell_weeks

__all__ = [
    "StatsBatch",
    "apply_cell_weeks",
    "decode_cell_week",
    "make_stats_consumer",
    "run_stats_consumer",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatsBatch:
    """What one batch did: distinct cell-weeks written, and messages skipped as invalid."""

    recorded: int
    rejected: int


def _when(d: dict[str, Any], key: str) -> datetime:
    value = d.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key}: is required (an ISO 8601 datetime with its UTC offset)")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not an ISO 8601 datetime") from None
    if t.tzinfo is None:
        raise ValueError(f"{key}: {value!r} must carry a UTC offset")
    return t


def _count(d: dict[str, Any], key: str) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key}: must be a non-negative integer (got {value!r})")
    return value


def _item_failures(raw: Any) -> dict[str, int]:
    """The topic's ``[[item, [ids…]], …]`` (or ``{item: count}``) as counts per hazard item."""
    pairs = raw.items() if isinstance(raw, dict) else raw
    out: dict[str, int] = {}
    try:
        for item, ids in pairs:
            out[str(item)] = ids if isinstance(ids, int) else len(ids)
    except (TypeError, ValueError):
        raise ValueError("item_failures: must be [[item, [record ids]], …] or {item: count}") from None
    return out


def decode_cell_week(value: bytes | str | None) -> CellWeekIn:
    """One message of the ``cell-weeks`` topic (``stream.codec.encode_cell_week`` JSON).

    Raises ``ValueError`` naming the field and the reason.
    """
    if value is None:
        raise ValueError("value: empty message")
    try:
        d = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"value: invalid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"value: expected a JSON object, got {type(d).__name__}")
    for key in ("region", "industry"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise ValueError(f"{key}: is required (a string)")
    return CellWeekIn(
        region=d["region"],
        industry=d["industry"],
        week_start=_when(d, "week_start"),
        week_end=_when(d, "week_end"),
        tested=_count(d, "tested"),
        failed=_count(d, "failed"),
        item_failures=_item_failures(d.get("item_failures") or ()),
    )


def _where(rec: Any) -> str:
    return f"{rec.topic}[{rec.partition}]@{rec.offset}"


def apply_cell_weeks(runtime: Runtime, records: Iterable[Any]) -> StatsBatch:
    """Upsert the cell-weeks of consumed records in one transaction and commit it.

    Counties and industries are checked against the runtime's catalogue (``QW_CATALOGUE_PATH``).
    Offsets are the caller's to commit, afterwards. Copies of one cell-week (one per partition)
    collapse into one row; the last copy wins.
    """
    rejected = 0
    cells: dict[tuple[str, str, datetime], tuple[CellWeekIn, str]] = {}
    for rec in records:
        try:
            cell = decode_cell_week(rec.value)
        except ValueError as exc:
            log.error("skipping invalid cell-week at %s: %s", _where(rec), exc)
            rejected += 1
            continue
        cells[(cell.region, cell.industry, cell.week_start)] = (cell, _where(rec))
    recorded = 0
    now = runtime.clock.now()
    with runtime.session() as session:
        for cell, where in cells.values():
            try:  # validation happens before any write, so a refused cell leaves the session clean
                recorded += record_cell_weeks(session, catalogue=runtime.catalogue, cells=[cell], now=now)
            except InvalidInput as exc:
                log.error("skipping cell-week at %s: %s", where, exc)
                rejected += 1
        session.commit()
    return StatsBatch(recorded=recorded, rejected=rejected)


def make_stats_consumer(runtime: Runtime, **overrides: Any) -> Any:
    """A kafka-python consumer of the ``cell-weeks`` topic in the stats group (manual commits)."""
    from alerts.consumer import kafka_consumer

    s = runtime.settings
    return kafka_consumer(runtime, group=s.stats_consumer_group, topic=s.cell_weeks, **overrides)


def run_stats_consumer(
    *,
    runtime: Runtime,
    stop: threading.Event,
    consumer: Any = None,
    poll_ms: int = 200,
    until: Callable[[int], bool] | None = None,
) -> int:
    """Consume until ``stop`` is set (or ``until(messages seen)`` holds); returns the messages seen."""
    own = consumer is None
    consumer = consumer or make_stats_consumer(runtime)
    seen = 0
    try:
        while not stop.is_set() and (until is None or not until(seen)):
            polled = consumer.poll(timeout_ms=poll_ms)
            records = [r for part in polled.values() for r in part]
            if not records:
                continue
            apply_cell_weeks(runtime, records)  # database commit first ...
            consumer.commit()  # ... then the offsets
            seen += len(records)
    finally:
        if own:
            consumer.close()
    return seen
