"""The engine's ordering: the region stage's reorder buffer and id window, and the week barrier."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from detectors.base import CellWeek
from detectors.engine import EngineConfig, Labels, Outcome, RegionStage, _Barrier
from schemas import SamplingResult, default_catalogue, uscc_check_char
from stream.codec import Rejection, decode_record
from stream.stages import CellWeekPartition, StageContext

ZONE = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(2021, 1, 4, tzinfo=ZONE)
CAT = default_catalogue()
REGION = CAT.region_codes[0]
ENTERPRISE = "91" + REGION + "MA7ABCDEF"
ENTERPRISE += uscc_check_char(ENTERPRISE)


def _record(rid: str, at: datetime) -> SamplingResult:
    doc = {
        "id": rid,
        "sampled_at": at.isoformat(),
        "region": REGION,
        "industry": CAT.industry_slugs[0],
        "product": "x",
        "enterprise_id": ENTERPRISE,
        "passed": True,
        "inspector_id": "I1",
    }
    rec = decode_record(json.dumps(doc).encode(), SamplingResult, CAT)
    assert not isinstance(rec, Rejection), rec
    return rec


class _Seen:
    """A record detector that remembers what it was given, in order."""

    def __init__(self) -> None:
        self.order: list[tuple[str, float | None]] = []

    def step(self, obs: Any, at: float | None = None) -> list[Any]:
        self.order.append((obs.id, at))
        return []


def _stage(**config: Any) -> tuple[RegionStage, _Seen]:
    stage = RegionStage(REGION, CAT, EngineConfig(epoch=EPOCH, **config), Labels.from_catalogue(CAT))
    seen = _Seen()
    stage.detectors.record = [seen]
    stage.detectors.week = []
    return stage, seen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_records_sharing_an_event_time_are_released_in_id_order_whatever_their_arrival(seed: int) -> None:
    rng = random.Random(seed)
    times = [EPOCH + timedelta(hours=h) for h in (1, 1, 1, 2, 2, 3, 4, 4, 4, 4)]
    records = [_record(f"R{n:02d}", t) for n, t in enumerate(times)]
    rng.shuffle(records)  # all within the allowed lateness of each other
    stage, seen = _stage()
    for r in records:
        assert stage.submit(r)[0] is Outcome.accepted
    stage.flush()
    expected = sorted(records, key=lambda r: (r.sampled_at, r.id))
    assert [rid for rid, _ in seen.order] == [r.id for r in expected]
    # the detectors get each record's event time in POSIX seconds with it
    assert [at for _, at in seen.order] == [r.sampled_at.timestamp() for r in expected]


def test_an_id_is_a_duplicate_within_the_horizon_and_forgotten_after_it() -> None:
    stage, _ = _stage(dedup_horizon=timedelta(days=7), allowed_lateness=timedelta(hours=1))
    first = _record("A", EPOCH + timedelta(hours=1))
    assert stage.submit(first)[0] is Outcome.accepted
    # thousands of other records over six days: the id window closes several batches meanwhile
    for n in range(3000):
        stage.submit(_record(f"B{n}", EPOCH + timedelta(hours=1, minutes=2 * (n + 1))))
    assert stage.submit(_record("A", EPOCH + timedelta(days=6)))[0] is Outcome.duplicate
    # far beyond the horizon the id may be used again (memory stays bounded)
    for n in range(3000):
        stage.submit(_record(f"C{n}", EPOCH + timedelta(days=6, minutes=5 * (n + 1))))
    assert stage.submit(_record("A", EPOCH + timedelta(days=20)))[0] is Outcome.accepted
    assert len(stage._ids) < 6002
    assert stage.counts[Outcome.duplicate] == 1


# -- the week barrier and a county that sends nothing ------------------------------------------------


def _cells(week: int, regions: Sequence[str]) -> list[CellWeek]:
    start = EPOCH + timedelta(weeks=week)
    return [
        CellWeek(region, industry, start, start + timedelta(weeks=1), 10, 1, (f"{region}-{industry}-{week}",))
        for region in regions
        for industry in CAT.industry_slugs
    ]


def test_a_silent_county_holds_weeks_back_until_a_later_week_has_waited_idle_release() -> None:
    barrier = _Barrier(CAT.region_codes, CAT.industry_slugs, idle_release=timedelta(hours=72))
    talking, silent = CAT.region_codes[:-1], CAT.region_codes[-1]
    t0 = datetime(2021, 2, 1, 9, tzinfo=ZONE)  # the worker's clock
    assert barrier.add(_cells(0, talking) + _cells(1, talking), t0) == []
    assert barrier.add(_cells(2, talking)[:1], t0 + timedelta(hours=71)) == []  # week 1 waited 71 h
    (week0,) = barrier.add([], t0 + timedelta(hours=72))  # week 1 has now waited 72 h: week 0 goes
    assert {c.region for c in week0} == set(CAT.region_codes) and len(week0) == len(barrier._keys)
    assert {(c.tested, c.failed) for c in week0 if c.region == silent} == {(0, 0)}  # counted as untested
    first = next(c for c in week0 if c.region == talking[0])  # the cells come sorted by county, industry
    assert first.failed_ids == (f"{talking[0]}-{min(CAT.industry_slugs)}-0",)
    assert barrier.incomplete == [(EPOCH, (silent,))]
    # week 1 waits until week 2 (first seen at 71 h) has waited 72 h too
    assert barrier.add([], t0 + timedelta(hours=142)) == []
    (week1,) = barrier.add([], t0 + timedelta(hours=143))
    assert week1[0].week_start == EPOCH + timedelta(weeks=1)
    # the silent county's cells of a released week, come at last, are ignored and counted
    assert barrier.add(_cells(0, [silent]), t0 + timedelta(hours=144)) == []
    assert barrier.ignored == len(CAT.industry_slugs)
    # its cells of the week still waiting complete it at once
    (week2,) = barrier.add(_cells(2, CAT.region_codes), t0 + timedelta(hours=145))
    assert {(c.region, c.tested) for c in week2} == {(r, 10) for r in CAT.region_codes}
    assert len(barrier.incomplete) == 2


@pytest.mark.parametrize("idle_release", [None, timedelta(hours=1)])
def test_without_a_clock_or_a_setting_the_barrier_waits_for_every_county(
    idle_release: timedelta | None,
) -> None:
    barrier = _Barrier(CAT.region_codes, CAT.industry_slugs, idle_release=idle_release)
    talking = CAT.region_codes[:-1]
    clock = None if idle_release is not None else datetime(2021, 2, 1, tzinfo=ZONE)  # a replay has no clock
    for week in range(6):
        assert barrier.add(_cells(week, talking), clock) == []
    if clock is not None:
        assert barrier.add([], clock + timedelta(days=365)) == []
    assert barrier.incomplete == [] and len(barrier._pending) == 6


def test_the_stream_partition_releases_industry_and_systemic_weeks_of_a_silent_county() -> None:
    config = EngineConfig(epoch=EPOCH, idle_release=timedelta(hours=72))
    part = CellWeekPartition(StageContext.create(CAT, config), 0, 1)
    talking, silent = CAT.region_codes[:-1], CAT.region_codes[-1]
    t0 = datetime(2021, 2, 1, 9, tzinfo=ZONE)
    for cell in _cells(0, talking) + _cells(1, talking):
        part.submit(cell, now=t0)
    assert part.incomplete_weeks == []
    part.submit(_cells(2, talking)[0], now=t0 + timedelta(hours=72))
    assert part.incomplete_weeks == [(EPOCH, (silent,))]
    for stage in part.industries.values():  # every industry stepped week 0, not only the cell's
        assert stage._barrier._done == EPOCH
