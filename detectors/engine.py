"""The detection engine: the same code for ``qualitywatch replay`` and the faust workers.

It is split into stages along the stream's partitioning, so a worker can run each stage where its
key lives and a replay can wire them together in one process:

* :class:`RegionStage` (keyed by county): drops repeated record ids, restores event-time order within
  ``allowed_lateness``, runs the per-record enterprise detectors, closes event-time weeks into
  :class:`~detectors.base.CellWeek` s and runs the county's regional and policy-target detectors;
* :class:`PatrolStage` (keyed by county): the same for patrol reports and the patrol detectors;
* :class:`IndustryStage` (keyed by industry) and :class:`SystemicStage` (keyed by hazard item) read
  the cell-weeks of every county and step a week once every county has closed it (a barrier), so
  the result does not depend on how records interleave across partitions.

Every stage is picklable: its whole state can be checkpointed together with the source offsets.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas import Catalogue, PatrolReport, RiskWarning, SamplingResult
from schemas.fastpath import SamplingRecord
from schemas.weeks import WEEK, epoch_seconds, week_start

from .base import CellWeek, ItemCell, ItemWeek, SeriesWeek

__all__ = [
    "DetectionEngine",
    "EngineConfig",
    "IndustryStage",
    "Labels",
    "Outcome",
    "PatrolStage",
    "RegionStage",
    "SystemicStage",
]


class Outcome(StrEnum):
    """What happened to one record handed to a stage."""

    accepted = "accepted"
    duplicate = "duplicate"  # its id was seen before: ignored, never counted twice
    late = "late"  # its week had already been closed: refused, reported
    before_epoch = "before_epoch"  # older than the first week this engine watches


@dataclass(frozen=True)
class EngineConfig:
    """Engine hyper-parameters (the detectors' own live in their constructors)."""

    #: how far behind the newest event time a record may arrive and still count in order
    allowed_lateness: timedelta = timedelta(days=2)
    #: how long (event time) a record id is remembered for de-duplication
    dedup_horizon: timedelta = timedelta(weeks=8)
    #: the first week watched (Monday 00:00 local); None: the week of the first record seen
    epoch: datetime | None = None
    seed: int = 0
    #: the stream's industry and systemic stages release a week without the counties that have sent
    #: nothing once a later week has waited this long by the worker's clock (``_Barrier``); None: wait
    #: for every county (a replay, which has no clock, always waits)
    idle_release: timedelta | None = None
    #: decide the enterprise outlier model over batches of records (``EnterpriseOutlierDetector.drain``:
    #: up to 256 records of a county and industry, the rest at the end of input): the same warnings,
    #: later. For replays; a live stream decides each record as it arrives
    batch_scoring: bool = False


@dataclass(frozen=True)
class Labels:
    """Human names for summaries, from the catalogue (detectors never read the catalogue)."""

    regions: dict[str, str] = field(default_factory=dict)
    industries: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_catalogue(cls, cat: Catalogue) -> Labels:
        return cls(
            regions={r.code: f"{r.name_en} {r.name_zh}" for r in cat.regions},
            industries={i.slug: f"{i.name_en} {i.name_zh}" for i in cat.industries},
            items={h.name: f"{h.name_en} {h.name_zh}" for h in cat.hazard_items},
        )

    def region(self, code: str) -> str:
        return self.regions.get(code, code)

    def industry(self, slug: str) -> str:
        return self.industries.get(slug, slug)

    def item(self, name: str) -> str:
        return self.items.get(name, name)


class _IdWindow:
    """Record ids seen within ``horizon`` of event time (bounded memory).

    Ids are remembered in batches, in arrival order. When a batch closes (``expire``) it is stamped
    with the newest event time received so far, an upper bound of its ids' event times; it is
    forgotten whole once that stamp is older than the newest event time minus the horizon. So an id
    may be kept a little longer than the horizon, never forgotten early, and remembering one costs
    a set insertion and a list append (the stage's hot path does both itself: ``seen``, ``batch``).
    """

    def __init__(self, horizon: timedelta) -> None:
        self._horizon = horizon.total_seconds()
        self.seen: set[str] = set()
        self.batch: list[str] = []  # the ids added since the last expire, in arrival order
        self._closed: deque[tuple[float, list[str]]] = deque()  # (stamp, ids), oldest first

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.seen

    def add(self, record_id: str) -> None:
        self.seen.add(record_id)
        self.batch.append(record_id)

    def expire(self, watermark: float) -> None:
        """Close the open batch (stamped ``watermark``, the newest event time received) and forget
        the batches stamped before ``watermark - horizon``."""
        if self.batch:
            self._closed.append((watermark, self.batch))
            self.batch = []
        cutoff = watermark - self._horizon
        closed, seen = self._closed, self.seen
        while closed and closed[0][0] < cutoff:
            seen.difference_update(closed.popleft()[1])

    def __len__(self) -> int:
        return len(self.seen)


class _Bucket:
    __slots__ = ("failed_ids", "items", "last_event", "last_key", "tested")

    def __init__(self) -> None:
        self.tested = 0
        self.failed_ids: list[str] = []
        self.items: dict[str, list[str]] = {}
        self.last_event: datetime | None = None
        self.last_key = -math.inf  # last_event in POSIX seconds

    def add(self, record: Any, key: float) -> None:
        """Count ``record``, whose event time is ``key`` (POSIX seconds)."""
        self.tested += 1
        if not record.passed:
            rid = record.id
            self.failed_ids.append(rid)
            for item in record.failed_items:
                self.items.setdefault(item, []).append(rid)
        if key > self.last_key:
            self.last_event = record.sampled_at
            self.last_key = key


class _Week:
    """One event-time week: its local start and end, and both as POSIX seconds (cheap to compare)."""

    __slots__ = ("end", "end_key", "start", "start_key")

    def __init__(self, start: datetime, zone: Any) -> None:
        self.start = start
        self.end = _next_week(start, zone)
        self.start_key = start.timestamp()
        self.end_key = self.end.timestamp()


class _Buffer:
    """Records waiting for release in event-time order, keyed by event time in POSIX seconds.

    ``heap`` holds the keys only (plain floats: a heap of them is several times cheaper to keep than
    one of tuples), ``held`` the record of each key. Records that share a key, rare, wait in
    ``shared`` and leave in id order, so the order never depends on arrival. The stage's hot path
    uses ``heap`` and ``held`` directly for the common case (see :meth:`RegionStage.submit`).
    """

    __slots__ = ("heap", "held", "shared")

    def __init__(self) -> None:
        self.heap: list[float] = []
        self.held: dict[float, Any] = {}
        self.shared: dict[float, list[Any]] = {}  # the records of a key beyond the one in ``held``

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, key: float, record: Any) -> None:
        heapq.heappush(self.heap, key)
        if key in self.held:
            self.shared.setdefault(key, []).append(record)
        else:
            self.held[key] = record

    def pop(self) -> tuple[float, Any]:
        """The record with the smallest key (the smallest id among those that share it)."""
        key = heapq.heappop(self.heap)
        if key in self.shared:
            return key, self.take_shared(key)
        return key, self.held.pop(key)

    def take_shared(self, key: float) -> Any:
        """The first in id order of the records that share ``key`` (the heap has popped ``key``)."""
        waiting = sorted([self.held[key], *self.shared.pop(key)], key=lambda r: r.id)
        self.held[key] = waiting[1]
        if len(waiting) > 2:
            self.shared[key] = waiting[2:]
        return waiting[0]


class _OrderedStage:
    """Dedup + reorder buffer + week clock shared by the per-county stages.

    Event times are keyed as POSIX seconds (``datetime.timestamp()``): the same instants in the same
    order, and far cheaper to compare and hold than aware datetimes. The buffer (:class:`_Buffer`)
    releases records by key, then id; ids are unique in it (duplicates never enter).
    """

    def __init__(self, region: str, zone: Any, config: EngineConfig) -> None:
        self.region = region
        self._zone = zone
        self._config = config
        self._lateness = config.allowed_lateness.total_seconds()
        self._ids = _IdWindow(config.dedup_horizon)
        self._buffer = _Buffer()
        self._watermark = -math.inf  # newest event time received
        self._released: float | None = None  # newest event time released to the detectors
        self._open: _Week | None = None if config.epoch is None else _Week(config.epoch, zone)
        self.counts: dict[str, int] = {o: 0 for o in Outcome}  # keyed by Outcome, a str

    def _admit(self, record_id: str, when: datetime, key: float) -> Outcome:
        if record_id in self._ids:
            return Outcome.duplicate
        if self._open is None:
            self._open = _Week(week_start(when, self._zone), self._zone)
        if key < self._open.start_key:
            epoch = self._config.epoch
            return Outcome.before_epoch if epoch is None or when < epoch else Outcome.late
        # a record older than what was already released (out of order beyond the buffer) still
        # counts while its week is open; only per-record detectors see it out of order
        self._ids.add(record_id)
        return Outcome.accepted

    def _push(self, key: float, record: Any) -> None:
        self._buffer.push(key, record)
        if key > self._watermark:
            self._watermark = key

    def _pop_ready(self, flush: bool) -> tuple[float, Any] | None:
        """The next buffered record older than watermark - lateness (any, when flushing), or None."""
        heap = self._buffer.heap
        if not heap or (not flush and heap[0] > self._watermark - self._lateness):
            return None
        key, record = self._buffer.pop()
        if self._released is None or key > self._released:
            self._released = key
        return key, record

    def _weeks_to_close(self, flush: bool = False) -> list[datetime]:
        """Starts of the weeks that the released event time has passed (all when flushing)."""
        week, released = self._open, self._released
        if week is None or released is None:
            return []
        if not flush and released < week.end_key:
            return []  # the common case: still inside the open week
        out = []
        while flush or week.end_key <= released:
            if flush and week.start_key > released:
                break
            out.append(week.start)
            week = _Week(week.end, self._zone)
        self._open = week
        return out


def _next_week(start: datetime, zone: Any) -> datetime:
    nxt = start.date() + WEEK
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)


_NONE: tuple[()] = ()
_ACCEPTED = Outcome.accepted
#: how many new ids may be remembered between two expiry passes on the hot path (an id batch)
_ID_BATCH = 1024


class RegionStage(_OrderedStage):
    """Everything keyed by one county for sampling results (see the module docstring)."""

    def __init__(self, region: str, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_region_detectors

        super().__init__(region, catalogue.zone, config)
        self._industries = catalogue.industry_slugs
        self._targets = {slug: catalogue.target_for_industry(slug) for slug in self._industries}
        self._labels = labels
        self._buckets: dict[datetime, dict[str, _Bucket]] = {}
        self._count_week: tuple[float, float, dict[str, _Bucket]] | None = None  # the week counted last
        self.detectors = build_region_detectors(region, catalogue, config, labels)

    def submit(self, record: Any) -> tuple[Outcome, list[RiskWarning], list[CellWeek]]:
        """Hand one record to the stage: its outcome, the warnings and the cell-weeks it closed.

        ``record`` is a :class:`~schemas.SamplingResult` or a :class:`~schemas.fastpath.SamplingRecord`.
        The returned lists are empty tuples when nothing happened (the common case: no allocation).
        This is the hot path of a replay: the common case (one record in, one released, no week
        closed) is written out here rather than through the general ``_drain``.
        """
        when = record.sampled_at
        key = epoch_seconds(when)
        rid = record.id
        ids = self._ids
        week = self._open
        if rid in ids.seen or week is None or key < week.start_key:
            # a duplicate, the stage's first record, or one before the open week: the general path
            outcome = self._admit(rid, when, key)
            if outcome is not _ACCEPTED:
                self.counts[outcome] += 1
                return outcome, _NONE, _NONE  # type: ignore[return-value]
            week = self._open
            assert week is not None  # set by _admit
        else:  # accepted: remember its id (what _admit does)
            ids.seen.add(rid)
            ids.batch.append(rid)
        self.counts[_ACCEPTED] += 1
        buffer = self._buffer
        heap, held, shared = buffer.heap, buffer.held, buffer.shared
        heapq.heappush(heap, key)  # what buffer.push does, written out for the common case
        if key in held:
            shared.setdefault(key, []).append(record)
        else:
            held[key] = record
        if key > self._watermark:
            self._watermark = key
        horizon = self._watermark - self._lateness
        if heap[0] > horizon:
            return _ACCEPTED, _NONE, _NONE  # type: ignore[return-value]  # nothing to release yet
        if heap[0] >= week.end_key or (self._released is not None and self._released >= week.end_key):
            warnings, cells = self._drain(flush=False)  # a week may close: the general path
            return _ACCEPTED, warnings, cells
        found: list[RiskWarning] | None = None
        record_steps = self.detectors.record_steps
        # every record released here belongs to the open week (an older one is refused as late), so
        # it is counted in the open week's buckets, found once here rather than by _count per record
        count_week = self._count_week
        buckets = count_week[2] if count_week is not None and count_week[0] == week.start_key else None
        while heap and heap[0] <= horizon and heap[0] < week.end_key:
            released = heapq.heappop(heap)
            ready = buffer.take_shared(released) if shared and released in shared else held.pop(released)
            if self._released is None or released > self._released:
                self._released = released
            if buckets is None:
                self._count(released, ready.sampled_at, ready)
                buckets = self._count_week[2]  # type: ignore[index]  # set by _count
            else:
                industry = ready.industry
                (buckets.get(industry) or buckets.setdefault(industry, _Bucket())).add(ready, released)
            for only, step in record_steps:  # what DetectorSet.on_record does
                if only is None or only(ready):
                    emitted = step(ready, released)
                    if emitted:
                        found = [*found, *emitted] if found else list(emitted)
        if heap and heap[0] <= horizon:
            warnings, cells = self._drain(flush=False)  # the rest crosses into the next week
            return _ACCEPTED, [*(found or ()), *warnings], cells
        if len(ids.batch) >= _ID_BATCH:
            ids.expire(self._watermark)
        return _ACCEPTED, found or _NONE, _NONE  # type: ignore[return-value]

    def flush(self) -> tuple[list[RiskWarning], list[CellWeek]]:
        """Release everything buffered and close every week up to the newest record (end of a replay)."""
        return self._drain(flush=True)

    def _drain(self, flush: bool) -> tuple[list[RiskWarning], list[CellWeek]]:
        warnings: list[RiskWarning] = []
        cells: list[CellWeek] = []
        on_record = self.detectors.on_record
        while (ready := self._pop_ready(flush)) is not None:
            key, record = ready
            when = record.sampled_at
            if self._released >= self._open.end_key:  # type: ignore[operator, union-attr]
                for start in self._weeks_to_close():
                    w, c = self._close(start)
                    warnings += w
                    cells += c
            self._count(key, when, record)
            found = on_record(record, key)
            if found:
                warnings += found
        self._ids.expire(self._watermark)
        for start in self._weeks_to_close(flush):
            w, c = self._close(start)
            warnings += w
            cells += c
        if flush:
            warnings += self.detectors.drain()
        return warnings, cells

    def _count(self, key: float, when: datetime, record: Any) -> None:
        week = self._count_week
        if week is not None and week[0] <= key < week[1]:
            buckets = week[2]
        else:
            start = week_start(when, self._zone)
            buckets = self._buckets.setdefault(start, {})
            self._count_week = (start.timestamp(), _next_week(start, self._zone).timestamp(), buckets)
        (buckets.get(record.industry) or buckets.setdefault(record.industry, _Bucket())).add(record, key)

    def _close(self, start: datetime) -> tuple[list[RiskWarning], list[CellWeek]]:
        end = _next_week(start, self._zone)
        buckets = self._buckets.pop(start, {})
        week = self._count_week
        if week is not None and week[2] is buckets:
            self._count_week = None
        cells = []
        for slug in self._industries:
            b = buckets.get(slug)
            if b is None:
                cells.append(CellWeek(self.region, slug, start, end, 0, 0))
                continue
            cells.append(
                CellWeek(
                    region=self.region,
                    industry=slug,
                    week_start=start,
                    week_end=end,
                    tested=b.tested,
                    failed=len(b.failed_ids),
                    failed_ids=tuple(sorted(b.failed_ids)),
                    item_failures=tuple(sorted((k, tuple(sorted(v))) for k, v in b.items.items())),
                    last_event=b.last_event,
                )
            )
        series = SeriesWeek.combine(cells, self._targets)
        return self.detectors.on_week(series), cells


class PatrolStage(_OrderedStage):
    """Patrol reports of one county: dedup, then the patrol detectors at once.

    A major hazard must warn the moment its report arrives, so patrol reports are not held back
    for reordering (no ``allowed_lateness``) and no week clock refuses a report that comes in days
    late: the patrol detectors work per report, in arrival order, which Kafka keeps per county.
    """

    def __init__(self, region: str, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_patrol_detectors

        super().__init__(region, catalogue.zone, replace(config, allowed_lateness=timedelta(0)))
        self.detectors = build_patrol_detectors(region, catalogue, config, labels)

    def submit(self, report: PatrolReport) -> tuple[Outcome, list[RiskWarning]]:
        when = report.patrolled_at
        key = epoch_seconds(when)
        outcome = self._admit(report.id, when, key)
        self.counts[outcome] += 1
        if outcome is not Outcome.accepted:
            return outcome, []
        self._push(key, report)
        return outcome, self._drain(False)

    def flush(self) -> list[RiskWarning]:
        return self._drain(True)

    def _drain(self, flush: bool) -> list[RiskWarning]:
        out: list[RiskWarning] = []
        while (ready := self._pop_ready(flush)) is not None:
            out += self.detectors.on_record(ready[1], ready[0])
        self._ids.expire(self._watermark)
        return out


class _Barrier:
    """Collects cell-weeks from every county; yields a week once every one of its cells has arrived.

    A county closes a week with one cell per industry of the catalogue (untested ones included), so a
    week is complete when it holds every (county, industry) cell the stage expects. Waiting for a
    county's first cell is not enough: the stream delivers the cells one at a time, and releasing the
    week then would drop the county's other cells of it.

    A county that sends nothing closes no week, and would hold every later week back for good. With
    ``idle_release`` (the stream's setting; a replay has no clock and always waits), an incomplete
    week is released once a later week has been waiting that long by the clock passed to :meth:`add`:
    the event time has moved on everywhere else, and the silent counties' cells of it count as
    untested. Their cells that come after all are then ignored (``ignored``), as re-sent ones are;
    each county's own detectors still see all of its records.
    """

    def __init__(
        self, regions: Iterable[str], industries: Iterable[str], idle_release: timedelta | None = None
    ) -> None:
        self._keys = frozenset((r, i) for r in regions for i in industries)
        self._idle = idle_release
        self._pending: dict[datetime, dict[tuple[str, str], CellWeek]] = {}
        self._since: dict[datetime, datetime] = {}  # when (clock) each pending week's first cell came
        self._done: datetime | None = None  # start of the newest week already released
        #: weeks released without some counties' cells (``idle_release``), and the counties missing
        self.incomplete: list[tuple[datetime, tuple[str, ...]]] = []
        #: cells that came after their week was released (re-sent, or from a county released without)
        self.ignored = 0

    def add(self, cells: Iterable[CellWeek], now: datetime | None = None) -> list[list[CellWeek]]:
        """Take ``cells``; the weeks now released, oldest first. ``now``: the clock (the stream's)."""
        for c in cells:
            if self._done is not None and c.week_start <= self._done:
                self.ignored += 1  # its week was stepped already (a restarted producer, a late county)
                continue
            week = self._pending.get(c.week_start)
            if week is None:
                week = self._pending[c.week_start] = {}
                if now is not None:
                    self._since[c.week_start] = now
            week[(c.region, c.industry)] = c
        ready = []
        for start in sorted(self._pending):
            week = self._pending[start]
            if not week.keys() >= self._keys:
                if not self._overdue(start, now):
                    break
                missing = self._keys - week.keys()
                end = next(iter(week.values())).week_end
                for region, industry in missing:
                    week[(region, industry)] = CellWeek(region, industry, start, end, 0, 0)
                self.incomplete.append((start, tuple(sorted({r for r, _ in missing}))))
            del self._pending[start]
            self._since.pop(start, None)
            ready.append(sorted(week.values(), key=lambda c: (c.region, c.industry)))
            self._done = start
        return ready

    def _overdue(self, start: datetime, now: datetime | None) -> bool:
        """Whether the incomplete week ``start`` may go: a later week has waited ``idle_release``."""
        if self._idle is None or now is None:
            return False
        return any(s > start and now - since >= self._idle for s, since in self._since.items())


class IndustryStage:
    """One industry across the prefecture: industry-level rate and policy-target detectors."""

    def __init__(self, industry: str, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_industry_detectors

        self.industry = industry
        self._barrier = _Barrier(catalogue.region_codes, (industry,), config.idle_release)
        self._target = {industry: catalogue.target_for_industry(industry)}
        self.detectors = build_industry_detectors(industry, catalogue, config, labels)

    def submit(self, cells: Iterable[CellWeek], now: datetime | None = None) -> list[RiskWarning]:
        """Step the detectors for each week every county has closed (``now``: see ``_Barrier``)."""
        out: list[RiskWarning] = []
        for week in self._barrier.add((c for c in cells if c.industry == self.industry), now):
            out += self.detectors.on_week(SeriesWeek.combine(week, self._target))
        return out

    def set_idle_release(self, idle_release: timedelta | None) -> None:
        """Release incomplete weeks after ``idle_release`` from now on (``None``: wait for ever)."""
        self._barrier._idle = idle_release


class SystemicStage:
    """Hazard items across counties and industries (all items, or those hashed to one partition)."""

    def __init__(self, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_systemic_detector

        self._catalogue = catalogue
        self._config = config
        self._labels = labels
        self._barrier = _Barrier(catalogue.region_codes, catalogue.industry_slugs, config.idle_release)
        self.detectors: dict[str, Any] = {}
        for item in sorted({i for ind in catalogue.industries for i in ind.hazard_items}):
            self.detectors[item] = build_systemic_detector(item, catalogue, config, labels)
        self._build = build_systemic_detector

    @property
    def incomplete_weeks(self) -> list[tuple[datetime, tuple[str, ...]]]:
        """Weeks released without the counties that sent nothing (``EngineConfig.idle_release``)."""
        return self._barrier.incomplete

    def set_idle_release(self, idle_release: timedelta | None) -> None:
        """Release incomplete weeks after ``idle_release`` from now on (``None``: wait for ever)."""
        self._barrier._idle = idle_release

    def submit(
        self, cells: Iterable[CellWeek], items: Container[str] | None = None, now: datetime | None = None
    ) -> list[RiskWarning]:
        """Step every tracked item (or only ``items``) for each week all counties have closed
        (``now``: see ``_Barrier``)."""
        out: list[RiskWarning] = []
        for week in self._barrier.add(cells, now):
            failures: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {}
            for c in week:
                for item, ids in c.item_failures:
                    failures.setdefault(item, {})[(c.region, c.industry)] = ids
            for item in sorted(failures):
                if item not in self.detectors and (items is None or item in items):
                    self.detectors[item] = self._build(item, self._catalogue, self._config, self._labels)
            events = [c.last_event for c in week if c.last_event is not None]
            last_event = max(events) if events else None
            tested = [c for c in week if c.tested]
            # an item that failed nowhere this week sees the same cells as any other such item
            clean = tuple(ItemCell(c.region, c.industry, c.tested, 0, ()) for c in tested)
            position = {(c.region, c.industry): n for n, c in enumerate(tested)}
            for item in sorted(self.detectors):
                if items is not None and item not in items:
                    continue
                per = failures.get(item)
                item_cells = clean
                if per:
                    # the clean cells, with the ones where the item failed replaced
                    changed = list(clean)
                    for cell_key, ids in per.items():
                        n = position.get(cell_key)
                        if n is not None and ids:
                            c = tested[n]
                            changed[n] = ItemCell(c.region, c.industry, c.tested, len(ids), ids)
                    item_cells = tuple(changed)
                obs = ItemWeek(
                    item=item,
                    week_start=week[0].week_start,
                    week_end=week[0].week_end,
                    cells=item_cells,
                    last_event=last_event,
                )
                out += self.detectors[item].step(obs)
        return out


class DetectionEngine:
    """All stages wired in one process: what ``qualitywatch replay`` runs.

    ``process_sampling`` / ``process_patrol`` return ``(outcome, warnings)``; ``flush`` closes the
    weeks still open at the end of a file. Warnings come out in a deterministic order.
    """

    def __init__(self, catalogue: Catalogue, config: EngineConfig | None = None) -> None:
        self.catalogue = catalogue
        self.config = config or EngineConfig()
        self.labels = Labels.from_catalogue(catalogue)
        if self.config.epoch is None:
            # every stage must agree on the first week, or the barriers wait for ever
            self._lazy_epoch = True
        else:
            self._lazy_epoch = False
        self.regions: dict[str, RegionStage] = {}
        self.patrols: dict[str, PatrolStage] = {}
        self.industries: dict[str, IndustryStage] = {}
        self.systemic: SystemicStage | None = None

    def _ensure(self, when: datetime) -> None:
        if self.regions:
            return
        cfg = self.config
        if self._lazy_epoch:
            cfg = replace(cfg, epoch=week_start(when, self.catalogue.zone))
            self.config = cfg
        for code in self.catalogue.region_codes:
            self.regions[code] = RegionStage(code, self.catalogue, cfg, self.labels)
            self.patrols[code] = PatrolStage(code, self.catalogue, cfg, self.labels)
        for slug in self.catalogue.industry_slugs:
            self.industries[slug] = IndustryStage(slug, self.catalogue, cfg, self.labels)
        self.systemic = SystemicStage(self.catalogue, cfg, self.labels)

    def process_sampling(self, record: SamplingResult | SamplingRecord) -> tuple[Outcome, list[RiskWarning]]:
        if not self.regions:
            self._ensure(record.sampled_at)
        outcome, warnings, cells = self.regions[record.region].submit(record)
        if cells:
            warnings = [*warnings, *self._downstream(cells)]
        return outcome, warnings

    def process_samplings(self, records: Iterable[SamplingResult | SamplingRecord]) -> list[RiskWarning]:
        """:meth:`process_sampling` for each of ``records``: their warnings, in order.

        A replay hands records over a chunk at a time: one call for several hundred records. The
        outcomes are counted by each county's stage (``RegionStage.counts``).
        """
        out: list[RiskWarning] = []
        submits: dict[str, Any] | None = None
        for record in records:
            if submits is None:
                if not self.regions:
                    self._ensure(record.sampled_at)
                submits = {code: stage.submit for code, stage in self.regions.items()}
            _outcome, warnings, cells = submits[record.region](record)
            if warnings:
                out += warnings
            if cells:
                out += self._downstream(cells)
        return out

    def process_patrol(self, report: PatrolReport) -> tuple[Outcome, list[RiskWarning]]:
        self._ensure(report.patrolled_at)
        return self.patrols[report.region].submit(report)

    def flush(self) -> list[RiskWarning]:
        """End of input: release buffers and close the open weeks of every county."""
        if not self.regions:
            return []
        out: list[RiskWarning] = []
        # close every county up to the same week, so the barriers can complete
        last = max((s._released for s in self.regions.values() if s._released is not None), default=None)
        for stage in self.regions.values():
            if last is not None and (stage._released is None or stage._released < last):
                stage._released = last
            w, cells = stage.flush()
            out += w + self._downstream(cells)
        for pstage in self.patrols.values():
            out += pstage.flush()
        return out

    def _downstream(self, cells: list[CellWeek]) -> list[RiskWarning]:
        if not cells:
            return []
        out: list[RiskWarning] = []
        for slug, stage in self.industries.items():
            out += stage.submit(c for c in cells if c.industry == slug)
        assert self.systemic is not None
        out += self.systemic.submit(cells)
        return out
