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
from collections.abc import Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas import Catalogue, PatrolReport, RiskWarning, SamplingResult
from schemas.weeks import WEEK, week_start

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
    """Record ids seen within ``horizon`` of event time (bounded memory)."""

    def __init__(self, horizon: timedelta) -> None:
        self._horizon = horizon
        self._seen: dict[str, datetime] = {}
        self._expiry: list[tuple[datetime, str]] = []

    def __contains__(self, record_id: str) -> bool:
        return record_id in self._seen

    def add(self, record_id: str, when: datetime) -> None:
        self._seen[record_id] = when
        heapq.heappush(self._expiry, (when, record_id))

    def expire(self, watermark: datetime) -> None:
        cutoff = watermark - self._horizon
        while self._expiry and self._expiry[0][0] < cutoff:
            when, rid = heapq.heappop(self._expiry)
            if self._seen.get(rid) == when:
                del self._seen[rid]

    def __len__(self) -> int:
        return len(self._seen)


class _Bucket:
    __slots__ = ("failed_ids", "items", "last_event", "last_utc", "tested")

    def __init__(self) -> None:
        self.tested = 0
        self.failed_ids: list[str] = []
        self.items: dict[str, list[str]] = {}
        self.last_event: datetime | None = None
        self.last_utc: datetime | None = None  # last_event in UTC (cheap to compare)


class _OrderedStage:
    """Dedup + reorder buffer + week clock shared by the per-county stages.

    Internally event times are compared as UTC datetimes (``key``): comparing two aware datetimes
    with different ``tzinfo`` objects calls ``utcoffset`` on both, which dominated the hot path.
    The order is the same instants' order, so the behaviour is unchanged.
    """

    def __init__(self, region: str, zone: Any, config: EngineConfig) -> None:
        self.region = region
        self._zone = zone
        self._config = config
        self._ids = _IdWindow(config.dedup_horizon)
        self._buffer: list[tuple[datetime, str, datetime, Any]] = []  # (key, id, event time, record)
        self._watermark: datetime | None = None  # newest event time received (UTC)
        self._released: datetime | None = None  # newest event time released to the detectors (UTC)
        self._open_week: datetime | None = config.epoch  # start of the oldest week not yet closed
        self._open_utc: tuple[datetime | None, datetime, datetime] | None = None  # open week, bounds in UTC
        self._count_week: tuple[datetime, datetime, datetime] | None = None  # (UTC start, UTC end, start)
        self.counts: dict[str, int] = {o.value: 0 for o in Outcome}

    def _open_bounds(self) -> tuple[datetime, datetime]:
        """Start and end of the open week as UTC datetimes (cached while the week stays open)."""
        cached = self._open_utc
        if cached is None or cached[0] is not self._open_week:
            assert self._open_week is not None
            start = self._open_week
            cached = (start, start.astimezone(UTC), (start + WEEK).astimezone(UTC))
            self._open_utc = cached
        return cached[1], cached[2]

    def _admit(self, record_id: str, when: datetime, key: datetime) -> Outcome:
        if record_id in self._ids:
            return Outcome.duplicate
        if self._open_week is None:
            self._open_week = week_start(when, self._zone)
        if key < self._open_bounds()[0]:
            epoch = self._config.epoch
            return Outcome.before_epoch if epoch is None or when < epoch else Outcome.late
        # a record older than what was already released (out of order beyond the buffer) still
        # counts while its week is open; only per-record detectors see it out of order
        self._ids.add(record_id, key)
        return Outcome.accepted

    def _push(self, key: datetime, record_id: str, when: datetime, record: Any) -> None:
        heapq.heappush(self._buffer, (key, record_id, when, record))
        if self._watermark is None or key > self._watermark:
            self._watermark = key

    def _ready(self, flush: bool = False) -> Iterable[tuple[datetime, datetime, Any]]:
        """Release buffered records older than watermark - lateness, in (event time, id) order.

        Yields ``(key, event time, record)``; ``key`` is the event time in UTC.
        """
        if self._watermark is None:
            return
        horizon = self._watermark - self._config.allowed_lateness
        while self._buffer and (flush or self._buffer[0][0] <= horizon):
            key, _rid, when, record = heapq.heappop(self._buffer)
            if self._released is None or key > self._released:
                self._released = key
            yield key, when, record
        self._ids.expire(self._watermark)

    def _weeks_to_close(self, flush: bool = False) -> list[datetime]:
        """Starts of the weeks that the released event time has passed (all when flushing)."""
        if self._open_week is None or self._released is None:
            return []
        if not flush and self._released < self._open_bounds()[1]:
            return []  # the common case: still inside the open week
        limit = self._released if not flush else None
        out = []
        while limit is None or self._open_week + WEEK <= limit:
            if flush and self._open_week > self._released:
                break
            out.append(self._open_week)
            self._open_week = _next_week(self._open_week, self._zone)
        return out


def _next_week(start: datetime, zone: Any) -> datetime:
    nxt = start.date() + WEEK
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)


class RegionStage(_OrderedStage):
    """Everything keyed by one county for sampling results (see the module docstring)."""

    def __init__(self, region: str, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_region_detectors

        super().__init__(region, catalogue.zone, config)
        self._industries = catalogue.industry_slugs
        self._targets = {slug: catalogue.target_for_industry(slug) for slug in self._industries}
        self._labels = labels
        self._buckets: dict[datetime, dict[str, _Bucket]] = {}
        self.detectors = build_region_detectors(region, catalogue, config, labels)

    def submit(self, record: SamplingResult) -> tuple[Outcome, list[RiskWarning], list[CellWeek]]:
        """Hand one record to the stage: its outcome, the warnings and the cell-weeks it closed."""
        when = record.sampled_at
        key = when.astimezone(UTC)
        outcome = self._admit(record.id, when, key)
        self.counts[outcome.value] += 1
        if outcome is not Outcome.accepted:
            return outcome, [], []
        self._push(key, record.id, when, record)
        warnings, cells = self._drain(flush=False)
        return outcome, warnings, cells

    def flush(self) -> tuple[list[RiskWarning], list[CellWeek]]:
        """Release everything buffered and close every week up to the newest record (end of a replay)."""
        return self._drain(flush=True)

    def _drain(self, flush: bool) -> tuple[list[RiskWarning], list[CellWeek]]:
        warnings: list[RiskWarning] = []
        cells: list[CellWeek] = []
        for key, when, record in self._ready(flush):
            for start in self._weeks_to_close():
                w, c = self._close(start)
                warnings += w
                cells += c
            self._count(key, when, record)
            warnings += self.detectors.on_record(record)
        for start in self._weeks_to_close(flush):
            w, c = self._close(start)
            warnings += w
            cells += c
        return warnings, cells

    def _count(self, key: datetime, when: datetime, record: SamplingResult) -> None:
        week = self._count_week
        if week is not None and week[0] <= key < week[1]:
            start = week[2]
        else:
            start = week_start(when, self._zone)
            self._count_week = (start.astimezone(UTC), (start + WEEK).astimezone(UTC), start)
        bucket = self._buckets.setdefault(start, {}).setdefault(record.industry, _Bucket())
        bucket.tested += 1
        if not record.passed:
            bucket.failed_ids.append(record.id)
            for item in record.failed_items:
                bucket.items.setdefault(item, []).append(record.id)
        if bucket.last_utc is None or key > bucket.last_utc:
            bucket.last_event = when
            bucket.last_utc = key

    def _close(self, start: datetime) -> tuple[list[RiskWarning], list[CellWeek]]:
        end = _next_week(start, self._zone)
        buckets = self._buckets.pop(start, {})
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
        key = when.astimezone(UTC)
        outcome = self._admit(report.id, when, key)
        self.counts[outcome.value] += 1
        if outcome is not Outcome.accepted:
            return outcome, []
        self._push(key, report.id, when, report)
        return outcome, self._drain(False)

    def flush(self) -> list[RiskWarning]:
        return self._drain(True)

    def _drain(self, flush: bool) -> list[RiskWarning]:
        out: list[RiskWarning] = []
        for _key, _when, report in self._ready(flush):
            out += self.detectors.on_record(report)
        return out


class _Barrier:
    """Collects cell-weeks from every county; yields a week once all counties have closed it."""

    def __init__(self, regions: tuple[str, ...]) -> None:
        self._regions = frozenset(regions)
        self._pending: dict[datetime, dict[tuple[str, str], CellWeek]] = {}
        self._seen: dict[datetime, set[str]] = {}
        self._done: datetime | None = None  # start of the newest week already released

    def add(self, cells: Iterable[CellWeek]) -> list[list[CellWeek]]:
        for c in cells:
            if self._done is not None and c.week_start <= self._done:
                continue  # a cell re-sent after its week was stepped (a restarted producer): ignore
            self._pending.setdefault(c.week_start, {})[(c.region, c.industry)] = c
            self._seen.setdefault(c.week_start, set()).add(c.region)
        ready = []
        for start in sorted(self._pending):
            if self._seen[start] >= self._regions:
                ready.append(sorted(self._pending.pop(start).values(), key=lambda c: (c.region, c.industry)))
                del self._seen[start]
                self._done = start
            else:
                break
        return ready


class IndustryStage:
    """One industry across the prefecture: industry-level rate and policy-target detectors."""

    def __init__(self, industry: str, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_industry_detectors

        self.industry = industry
        self._barrier = _Barrier(catalogue.region_codes)
        self._target = {industry: catalogue.target_for_industry(industry)}
        self.detectors = build_industry_detectors(industry, catalogue, config, labels)

    def submit(self, cells: Iterable[CellWeek]) -> list[RiskWarning]:
        out: list[RiskWarning] = []
        for week in self._barrier.add(c for c in cells if c.industry == self.industry):
            out += self.detectors.on_week(SeriesWeek.combine(week, self._target))
        return out


class SystemicStage:
    """Hazard items across counties and industries (all items, or those hashed to one partition)."""

    def __init__(self, catalogue: Catalogue, config: EngineConfig, labels: Labels) -> None:
        from .registry import build_systemic_detector

        self._catalogue = catalogue
        self._config = config
        self._labels = labels
        self._barrier = _Barrier(catalogue.region_codes)
        self.detectors: dict[str, Any] = {}
        for item in sorted({i for ind in catalogue.industries for i in ind.hazard_items}):
            self.detectors[item] = build_systemic_detector(item, catalogue, config, labels)
        self._build = build_systemic_detector

    def submit(self, cells: Iterable[CellWeek], items: Container[str] | None = None) -> list[RiskWarning]:
        """Step every tracked item (or only ``items``) for each week all counties have closed."""
        out: list[RiskWarning] = []
        for week in self._barrier.add(cells):
            failures: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {}
            for c in week:
                for item, ids in c.item_failures:
                    failures.setdefault(item, {})[(c.region, c.industry)] = ids
            for item in sorted(failures):
                if item not in self.detectors and (items is None or item in items):
                    self.detectors[item] = self._build(item, self._catalogue, self._config, self._labels)
            events = [c.last_event for c in week if c.last_event is not None]
            for item in sorted(self.detectors):
                if items is not None and item not in items:
                    continue
                per = failures.get(item, {})
                obs = ItemWeek(
                    item=item,
                    week_start=week[0].week_start,
                    week_end=week[0].week_end,
                    cells=tuple(
                        ItemCell(
                            c.region,
                            c.industry,
                            c.tested,
                            len(per.get((c.region, c.industry), ())),
                            per.get((c.region, c.industry), ()),
                        )
                        for c in week
                        if c.tested
                    ),
                    last_event=max(events) if events else None,
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
            cfg = EngineConfig(
                allowed_lateness=cfg.allowed_lateness,
                dedup_horizon=cfg.dedup_horizon,
                epoch=week_start(when, self.catalogue.zone),
                seed=cfg.seed,
            )
            self.config = cfg
        for code in self.catalogue.region_codes:
            self.regions[code] = RegionStage(code, self.catalogue, cfg, self.labels)
            self.patrols[code] = PatrolStage(code, self.catalogue, cfg, self.labels)
        for slug in self.catalogue.industry_slugs:
            self.industries[slug] = IndustryStage(slug, self.catalogue, cfg, self.labels)
        self.systemic = SystemicStage(self.catalogue, cfg, self.labels)

    def process_sampling(self, record: SamplingResult) -> tuple[Outcome, list[RiskWarning]]:
        self._ensure(record.sampled_at)
        outcome, warnings, cells = self.regions[record.region].submit(record)
        return outcome, warnings + self._downstream(cells)

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
