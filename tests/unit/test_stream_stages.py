"""The stream's partition stages without a broker: parity with the engine, poison decoding, checkpoints."""

from __future__ import annotations

import json
import pickle
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from detectors.base import CellWeek
from detectors.engine import DetectionEngine, EngineConfig
from schemas import SamplingResult, default_catalogue, uscc_check_char
from stream.checkpoint import Checkpoint, CheckpointStore
from stream.codec import Rejection, decode_cell_week, decode_record, encode_cell_week
from stream.settings import StreamSettings
from stream.stages import CellWeekPartition, SamplingPartition, StageContext

ZONE = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(2021, 1, 4, tzinfo=ZONE)
CAT = default_catalogue()


def _records(n: int, seed: int) -> list[SamplingResult]:
    rng = random.Random(seed)
    out = []
    ent = "91653022MA7" + "ABCDEF"
    ent += uscc_check_char(ent)
    for i in range(n):
        day = i * 70 // n  # ten weeks
        region = rng.choice(CAT.region_codes)
        industry = rng.choice(CAT.industry_slugs)
        passed = rng.random() > 0.1
        items = [] if passed else [rng.choice(CAT.items_for_industry(industry))]
        doc = {
            "id": f"R{i if rng.random() > 0.03 else max(0, i - 1)}",
            "sampled_at": (EPOCH + timedelta(days=day, hours=9, minutes=i % 60)).isoformat(),
            "region": region,
            "industry": industry,
            "product": "x",
            "enterprise_id": ent,
            "passed": passed,
            "failed_items": items,
            "inspector_id": "I1",
        }
        rec = decode_record(json.dumps(doc).encode(), SamplingResult, CAT)
        assert not isinstance(rec, Rejection), rec
        out.append(rec)
    return out


def _stream(
    records: list[SamplingResult], partitions: int
) -> tuple[list[str], list[CellWeek], dict[str, dict[str, int]]]:
    ctx = StageContext.create(CAT, EngineConfig(epoch=EPOCH))
    parts = [SamplingPartition(ctx) for _ in range(4)]
    down = [CellWeekPartition(ctx, p, partitions) for p in range(partitions)]
    warnings, cells = [], []
    for rec in records:
        _o, w, c = parts[CAT.region_codes.index(rec.region)].submit(rec)
        warnings += w
        cells += c
        for cell in c:
            for d in down:
                warnings += d.submit(cell)
                warnings += d.submit(cell)  # a re-sent cell changes nothing
    counts = {k: v.counts for p in parts for k, v in p.stages.items()}
    return sorted(w.id for w in warnings), cells, counts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_partitioned_stages_match_the_engine_however_counties_interleave(seed: int) -> None:
    records = _records(3000, seed)
    engine = DetectionEngine(CAT, EngineConfig(epoch=EPOCH))
    ref = sorted(w.id for r in records for w in engine.process_sampling(r)[1])
    ref_counts = {k: v.counts for k, v in engine.regions.items()}
    # another interleaving of the counties, each county's own order kept
    rng = random.Random(seed)
    queues = {code: [r for r in records if r.region == code] for code in CAT.region_codes}
    shuffled = []
    while any(queues.values()):
        code = rng.choice([c for c, q in queues.items() if q])
        shuffled.append(queues[code].pop(0))
    for partitions in (1, 4):
        got, cells, counts = _stream(shuffled, partitions)
        assert got == ref
        assert counts == ref_counts
        assert {(c.region, c.industry, c.week_start) for c in cells} == {
            (r, i, w)
            for r in CAT.region_codes
            for i in CAT.industry_slugs
            for w in {c.week_start for c in cells}
        }


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_records_handed_over_in_chunks_give_the_warnings_of_one_at_a_time_in_order(chunk: int) -> None:
    records = _records(3000, 4)
    one = DetectionEngine(CAT, EngineConfig(epoch=EPOCH))
    ref = [w.id for r in records for w in one.process_sampling(r)[1]] + [w.id for w in one.flush()]
    assert ref  # the records raise warnings, or the comparison says nothing
    many = DetectionEngine(CAT, EngineConfig(epoch=EPOCH))
    got = []
    for start in range(0, len(records), chunk):
        got += [w.id for w in many.process_samplings(records[start : start + chunk])]
    got += [w.id for w in many.flush()]
    assert got == ref
    assert {k: v.counts for k, v in many.regions.items()} == {k: v.counts for k, v in one.regions.items()}


def test_stage_state_survives_pickling_mid_stream() -> None:
    records = _records(1500, 7)
    ctx = StageContext.create(CAT, EngineConfig(epoch=EPOCH))
    whole = SamplingPartition(ctx)
    split = SamplingPartition(ctx)
    out_whole = [w.id for r in records for w in whole.submit(r)[1]]
    out_split = [w.id for r in records[:700] for w in split.submit(r)[1]]
    split = pickle.loads(pickle.dumps(split))
    out_split += [w.id for r in records[700:] for w in split.submit(r)[1]]
    assert out_split == out_whole
    assert {k: v.counts for k, v in split.stages.items()} == {k: v.counts for k, v in whole.stages.items()}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{oops", "invalid JSON"),
        (b'"text"', "invalid record: expected a JSON object"),
        (b'{"id": "a"}', "invalid record: sampled_at: is required"),
    ],
)
def test_decode_refuses_poison_with_a_reason(raw: bytes | None, reason: str) -> None:
    got = decode_record(raw, SamplingResult, CAT)
    assert isinstance(got, Rejection)
    assert got.reason.startswith(reason)


def test_a_record_whose_text_holds_a_nul_is_dead_lettered_naming_the_field() -> None:
    # a warning labelled with such a name would be refused by the alert service: the record is
    # dead-lettered with the reason instead
    ent = "91653022MA7ABCDEF"
    doc = {
        "id": "S-1",
        "sampled_at": datetime.now(ZONE).isoformat(),
        "region": CAT.region_codes[0],
        "industry": CAT.industry_slugs[0],
        "product": "x",
        "enterprise_id": ent + uscc_check_char(ent),
        "enterprise_name": "喀什\x00某厂",
        "passed": True,
        "inspector_id": "I1",
    }
    got = decode_record(json.dumps(doc).encode(), SamplingResult, CAT)
    assert isinstance(got, Rejection)
    assert got.reason.startswith("invalid record: enterprise_name: must not contain a control character")
    assert [(e["field"], e["type"]) for e in got.errors] == [("enterprise_name", "control_character")]


def test_cell_week_round_trip() -> None:
    cell = CellWeek(
        "653022",
        "textiles",
        EPOCH,
        datetime(2021, 1, 11, tzinfo=ZONE),
        10,
        2,
        ("a", "b"),
        (("ph", ("a",)), ("odour", ("b",))),
        datetime(2021, 1, 8, 10, tzinfo=ZONE),
    )
    assert decode_cell_week(encode_cell_week(cell), ZONE) == cell
    assert isinstance(decode_cell_week(b'{"region": "x"}', ZONE), Rejection)


def test_checkpoint_store_never_moves_a_partition_back(tmp_path: Path) -> None:
    store = CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}", "g")
    assert store.load("t", 0) is None
    assert store.save([Checkpoint("t", 0, 10, b"ten"), Checkpoint("t", 1, 3, b"three")]) == 2
    assert store.save([Checkpoint("t", 0, 7, b"seven")]) == 0  # a late writer behind: kept the furthest
    assert store.save([Checkpoint("t", 0, 12, b"twelve")]) == 1
    assert store.load("t", 0) == Checkpoint("t", 0, 12, b"twelve")
    assert [c.next_offset for c in store.load_all()] == [12, 3]
    store.close()


def test_settings_profiles_and_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    s = StreamSettings()
    assert (s.session_timeout_ms, s.fetch_max_wait_ms, s.enable_idempotence) == (6000, 100, False)
    monkeypatch.setenv("QW_PROFILE", "production")
    monkeypatch.setenv("QW_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("QW_CHECKPOINT_URL", "postgresql+psycopg://qw@db/qw")
    p = StreamSettings()
    assert (p.session_timeout_ms, p.enable_idempotence, p.acks, p.replication_factor) == (
        45000,
        True,
        "all",
        3,
    )
    monkeypatch.setenv("QW_FETCH_MAX_WAIT_MS", "250")
    assert StreamSettings().fetch_max_wait_ms == 250
    monkeypatch.delenv("QW_CHECKPOINT_URL")
    with pytest.raises(ValueError, match="QW_CHECKPOINT_URL"):
        StreamSettings()
    with pytest.raises(ValueError, match="epoch"):
        StreamSettings(epoch="2021-01-05T00:00:00+08:00")


def test_the_barrier_releases_a_week_only_when_every_cell_of_it_is_in() -> None:
    """Cells one at a time (as the stream sends them): a county's first cell does not complete the week."""
    from detectors.engine import _Barrier

    barrier = _Barrier(CAT.region_codes, CAT.industry_slugs)
    end = EPOCH + timedelta(weeks=1)
    cells = [CellWeek(r, i, EPOCH, end, 1, 0) for r in reversed(CAT.region_codes) for i in CAT.industry_slugs]
    for c in cells[:-1]:
        assert barrier.add([c]) == []
    (week,) = barrier.add([cells[-1]])
    assert {(c.region, c.industry) for c in week} == {(c.region, c.industry) for c in cells}
    assert barrier.add([cells[0]]) == []  # re-sent after its week was released: ignored
