"""The detection state of one input partition, wrapping the engine's stages (pure, no I/O).

A partition of ``sampling-results`` or ``patrol-reports`` holds the :class:`RegionStage` /
:class:`PatrolStage` of each county keyed to it. A partition *p* of the ``cell-weeks`` topic (which
carries every cell) holds the :class:`IndustryStage` of each industry and the systemic detectors of
each hazard item that hash to *p*. Each object is pickled whole into a checkpoint.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from detectors.base import CellWeek
from detectors.engine import (
    EngineConfig,
    IndustryStage,
    Labels,
    Outcome,
    PatrolStage,
    RegionStage,
    SystemicStage,
)
from schemas import Catalogue, PatrolReport, RiskWarning, SamplingResult
from schemas.fastpath import SamplingRecord

__all__ = ["CellWeekPartition", "PatrolPartition", "SamplingPartition", "StageContext", "owner"]


def owner(name: str, partitions: int) -> int:
    """The partition that owns an industry or hazard item (a stable hash, the same in every process)."""
    return zlib.crc32(name.encode("utf-8")) % partitions


@dataclass(frozen=True)
class StageContext:
    """What every stage is built from; the epoch must be the same for all of them."""

    catalogue: Catalogue
    config: EngineConfig
    labels: Labels

    @classmethod
    def create(cls, catalogue: Catalogue, config: EngineConfig) -> StageContext:
        if config.epoch is None:
            raise ValueError("epoch: must be set for the stream (the barriers wait for every county from it)")
        return cls(catalogue, config, Labels.from_catalogue(catalogue))

    def made_with(self) -> str:
        """The settings the stages keep inside their state, as a checkpoint records them: a digest of
        the catalogue's content (not of its file's path) and the seed."""
        cat = self.catalogue
        content = (
            cat.prefecture_code,
            cat.prefecture_name_zh,
            cat.prefecture_name_en,
            cat.timezone,
            sorted(cat.targets.items()),
            cat.regions,
            cat.industries,
            cat.hazard_items,
            sorted(cat.products.items()),
        )
        digest = hashlib.sha256(repr(content).encode("utf-8")).hexdigest()[:16]
        return f"catalogue={digest} seed={self.config.seed}"


class SamplingPartition:
    """The county stages of one ``sampling-results`` partition."""

    def __init__(self, ctx: StageContext) -> None:
        self._ctx = ctx
        self.stages: dict[str, RegionStage] = {}

    def submit(
        self, record: SamplingResult | SamplingRecord
    ) -> tuple[Outcome, list[RiskWarning], list[CellWeek]]:
        stage = self.stages.get(record.region)
        if stage is None:
            c = self._ctx
            stage = self.stages[record.region] = RegionStage(record.region, c.catalogue, c.config, c.labels)
        return stage.submit(record)


class PatrolPartition:
    """The patrol stages of one ``patrol-reports`` partition."""

    def __init__(self, ctx: StageContext) -> None:
        self._ctx = ctx
        self.stages: dict[str, PatrolStage] = {}

    def submit(self, report: PatrolReport) -> tuple[Outcome, list[RiskWarning]]:
        stage = self.stages.get(report.region)
        if stage is None:
            c = self._ctx
            stage = self.stages[report.region] = PatrolStage(report.region, c.catalogue, c.config, c.labels)
        return stage.submit(report)


class _Owned:
    """Hazard items owned by one partition (a picklable predicate for ``SystemicStage.submit``)."""

    def __init__(self, partition: int, partitions: int) -> None:
        self.partition = partition
        self.partitions = partitions

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and owner(item, self.partitions) == self.partition


class CellWeekPartition:
    """Industry and systemic stages of the industries and hazard items one partition owns."""

    def __init__(self, ctx: StageContext, partition: int, partitions: int) -> None:
        c = ctx
        self.partition = partition
        self.partitions = partitions
        self.industries = {
            slug: IndustryStage(slug, c.catalogue, c.config, c.labels)
            for slug in c.catalogue.industry_slugs
            if owner(slug, partitions) == partition
        }
        self._items = _Owned(partition, partitions)
        self.systemic = SystemicStage(c.catalogue, c.config, c.labels)
        self.cells_seen = 0

    def submit(self, cell: CellWeek, now: datetime | None = None) -> list[RiskWarning]:
        """``now``: the worker's clock, for releasing weeks a silent county holds back (``_Barrier``)."""
        self.cells_seen += 1
        out: list[RiskWarning] = []
        stage = self.industries.get(cell.industry)
        if stage is not None:
            out += stage.submit([cell], now)
        if now is not None:  # with a clock, a silent county's week may fall due in any industry
            for other in self.industries.values():
                if other is not stage:
                    out += other.submit([], now)
        out += self.systemic.submit([cell], items=self._items, now=now)
        return out

    def set_idle_release(self, idle_release: timedelta | None) -> None:
        """Apply the worker's ``QW_IDLE_COUNTY_RELEASE_HOURS`` to a state restored from a checkpoint,
        which holds the value it was created with."""
        for stage in self.industries.values():
            stage.set_idle_release(idle_release)
        self.systemic.set_idle_release(idle_release)

    @property
    def incomplete_weeks(self) -> list[tuple[datetime, tuple[str, ...]]]:
        """The weeks the systemic stage released without some counties, and which (oldest first)."""
        return self.systemic.incomplete_weeks
