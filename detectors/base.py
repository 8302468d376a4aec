"""The shape every detector has, the weekly observations they read, and warning construction.

A detector is a small class with no I/O. Its constructor takes only hyper-parameters (and the scope
it watches); its state is private and picklable (it lives in a faust table or a checkpoint).

* ``score(obs)`` is pure: it returns the :class:`Score` for ``obs`` and changes nothing;
* ``learn(obs)`` updates the state;
* ``step(obs)`` scores, decides, emits warnings (firing or resolved) and learns — but never learns
  from an observation it has just flagged, so an outbreak does not become the new normal.

Count detectors read closed event-time weeks (:class:`SeriesWeek`, :class:`ItemWeek`); record
detectors (enterprise, patrol) read one record at a time.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar, Generic, TypeVar

from schemas import (
    Evidence,
    Level,
    RiskWarning,
    Scope,
    WarningKind,
    WarningStatus,
    fingerprint_of,
    warning_id,
)

__all__ = [
    "MAX_EVIDENCE_IDS",
    "AlarmLatch",
    "CellWeek",
    "Detector",
    "ItemCell",
    "ItemWeek",
    "Score",
    "SeriesWeek",
    "enterprise_scope",
    "make_warning",
]

#: At most this many contributing record ids are listed in a warning's evidence (the count is exact).
MAX_EVIDENCE_IDS = 200

Obs = TypeVar("Obs")


@dataclass(frozen=True, slots=True)
class CellWeek:
    """One closed event-time week of one (county, industry) cell: the unit the stream passes on."""

    region: str
    industry: str
    week_start: datetime
    week_end: datetime
    tested: int
    failed: int
    failed_ids: tuple[str, ...] = ()
    #: hazard item -> ids of the failed records that named it (sorted)
    item_failures: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: latest event time of a record in this cell-week (None when nothing was tested)
    last_event: datetime | None = None


@dataclass(frozen=True, slots=True)
class SeriesWeek:
    """One closed week of one series (a county, or an industry across the prefecture)."""

    week_start: datetime
    week_end: datetime
    tested: int
    failed: int
    failed_ids: tuple[str, ...] = ()
    last_event: datetime | None = None
    #: the policy pass-rate target for this week's mix of tests (weighted by tested per industry)
    target: float | None = None
    #: the week per (county, industry) cell: ``("region/industry", tested, failed)``, sorted; empty when
    #: the series was not built from cells (then the rate detector models the total only)
    cells: tuple[tuple[str, int, int], ...] = ()

    @property
    def rate(self) -> float:
        return self.failed / self.tested if self.tested else 0.0

    @classmethod
    def combine(cls, cells: Sequence[CellWeek], targets: dict[str, float] | None = None) -> SeriesWeek:
        """Sum cells of one week into a series observation (cells must share the week).

        The cells' own counts are kept too (:attr:`cells`), so a detector can weigh each cell
        against its own baseline.
        """
        if not cells:
            raise ValueError("combine needs at least one cell")
        tested = sum(c.tested for c in cells)
        failed = sum(c.failed for c in cells)
        ids = tuple(sorted(i for c in cells for i in c.failed_ids))
        events = [c.last_event for c in cells if c.last_event is not None]
        target = None
        if targets and tested:
            target = sum(targets[c.industry] * c.tested for c in cells) / tested
        return cls(
            week_start=cells[0].week_start,
            week_end=cells[0].week_end,
            tested=tested,
            failed=failed,
            failed_ids=ids,
            last_event=max(events) if events else None,
            target=target,
            cells=tuple(sorted((f"{c.region}/{c.industry}", c.tested, c.failed) for c in cells)),
        )


@dataclass(frozen=True, slots=True)
class ItemCell:
    """How one hazard item did in one (county, industry) cell in one week."""

    region: str
    industry: str
    tested: int
    failed: int
    failed_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemWeek:
    """One closed week of one hazard item across every cell of the prefecture (cells with tests)."""

    item: str
    week_start: datetime
    week_end: datetime
    cells: tuple[ItemCell, ...]
    last_event: datetime | None = None

    @property
    def tested(self) -> int:
        return sum(c.tested for c in self.cells)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.cells)


@dataclass(frozen=True, slots=True)
class Score:
    """What ``score`` returns: the statistic against its threshold, and what was expected."""

    statistic: float
    threshold: float
    expected_rate: float | None = None
    p_value: float | None = None
    alarm: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AlarmLatch:
    """The alarm state a count detector carries from week to week.

    ``advance(alarm)`` says what to emit this week: ``firing`` every week the alarm holds, ``resolved``
    after ``resolve_after`` quiet weeks in a row, otherwise nothing. ``raise_to(level)`` keeps the
    highest level reached during the alarm (a warning never steps down while it fires); ``close()``
    forgets the alarm once its resolved emission is built.
    """

    resolve_after: int
    active: bool = False
    clear_run: int = 0
    firing_weeks: int = 0
    highest: Level | None = None

    def advance(self, alarm: bool) -> WarningStatus | None:
        if alarm:
            self.active = True
            self.clear_run = 0
            self.firing_weeks += 1
            return WarningStatus.firing
        if self.active:
            self.clear_run += 1
            if self.clear_run >= self.resolve_after:
                return WarningStatus.resolved
        return None

    def raise_to(self, level: Level) -> Level:
        if self.highest is None or level > self.highest:
            self.highest = level
        return self.highest

    def close(self) -> None:
        self.active = False
        self.clear_run = 0
        self.firing_weeks = 0
        self.highest = None


class Detector(ABC, Generic[Obs]):
    """Base of every detector (see the module docstring for the contract)."""

    #: detector name: goes into ``RiskWarning.detector`` and the fingerprint
    name: ClassVar[str]

    @abstractmethod
    def score(self, obs: Obs) -> Score:
        """Score ``obs`` against the current state without changing it."""

    @abstractmethod
    def learn(self, obs: Obs) -> None:
        """Update the state with ``obs``."""

    @abstractmethod
    def step(self, obs: Obs) -> list[RiskWarning]:
        """Score, decide, emit (firing/resolved) and learn from ``obs`` (unless it was flagged)."""


def _clean(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@lru_cache(maxsize=16_384)
def enterprise_scope(region: str, industry: str | None, enterprise_id: str) -> Scope:
    """The scope of one enterprise's warnings, built once and shared (a :class:`Scope` is frozen)."""
    return Scope(region=region, industry=industry, enterprise_id=enterprise_id)


def make_warning(
    *,
    detector: str,
    kind: WarningKind,
    level: Level,
    scope: Scope,
    raised_at: datetime,
    window_start: datetime,
    window_end: datetime,
    tested: int,
    failed: int,
    expected_rate: float | None,
    summary: str,
    statistic: float | None = None,
    threshold: float | None = None,
    p_value: float | None = None,
    record_ids: Iterable[str] = (),
    status: WarningStatus = WarningStatus.firing,
    observed_rate: float | None = None,
    **extra: Any,
) -> RiskWarning:
    """Build a :class:`RiskWarning` with its deterministic fingerprint and id.

    ``extra`` holds detector-specific evidence (numbers, short lists); non-finite floats become null
    so the JSON stays valid.
    """
    fp = fingerprint_of(detector, kind, scope)
    ids = sorted(set(record_ids))
    evidence = Evidence(
        tested=tested,
        failed=failed,
        observed_rate=_clean(observed_rate)
        if observed_rate is not None
        else (failed / tested if tested else 0.0),
        expected_rate=_clean(expected_rate),
        statistic=_clean(statistic),
        threshold=_clean(threshold),
        p_value=_clean(p_value),
        record_ids=ids[:MAX_EVIDENCE_IDS],
        **{k: (_clean(v) if isinstance(v, float) else v) for k, v in extra.items()},
        record_ids_total=len(ids),
    )
    return RiskWarning(
        id=warning_id(fp, status, window_end, raised_at),
        fingerprint=fp,
        kind=kind,
        level=level,
        status=status,
        scope=scope,
        detector=detector,
        raised_at=raised_at,
        window_start=window_start,
        window_end=window_end,
        evidence=evidence,
        summary=summary,
    )
