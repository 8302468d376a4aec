"""The region stage's reorder buffer and id window: release order and what counts as a duplicate."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from detectors.engine import EngineConfig, Labels, Outcome, RegionStage
from schemas import SamplingResult, default_catalogue, uscc_check_char
from stream.codec import Rejection, decode_record

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
