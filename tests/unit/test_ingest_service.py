"""The ingest service: every rejection reason, per-row outcomes, idempotency and conflicts, on each store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ingest_cases import NOW, backends, clock, patrol, sampling, store
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stream.ingest import OutboxRecord, RawRow, canonical_record, submit_many, submit_one, summarise
from stream.ingest.models import RecordKind


@pytest.fixture(params=backends())
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with store(request.param, tmp_path) as factory:
        yield factory


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.execute(select(func.count()).select_from(OutboxRecord)).scalar_one())


def _one(sessions: sessionmaker[Session], data: Any, kind: str = "sampling", **kw: Any) -> Any:
    with sessions() as s:
        return submit_one(s, kind=kind, data=data, clock=clock, **kw)


REJECTIONS = [
    ("sampling", sampling(id=...), "id", "missing"),
    ("sampling", sampling(colour="red"), "colour", "extra_forbidden"),
    ("sampling", sampling(product="   "), "product", "blank"),
    ("sampling", sampling(id="x" * 129), "id", "string_too_long"),
    ("sampling", sampling(region="999999"), "region", "unknown_region"),
    ("sampling", sampling(industry="spaceflight"), "industry", "unknown_industry"),
    ("sampling", sampling(enterprise_id="91653001MA7B000010"), "enterprise_id", "invalid_uscc"),
    ("sampling", sampling(sampled_at="2026-04-01T10:00:00+08:00"), "sampled_at", "in_future"),
    ("sampling", sampling(sampled_at="1990-01-01T10:00:00+08:00"), "sampled_at", "implausibly_old"),
    ("sampling", sampling(sampled_at="2026-03-02T10:00:00"), "sampled_at", "timezone_aware"),
    ("sampling", sampling(sampled_at="last tuesday"), "sampled_at", "datetime_from_date_parsing"),
    ("sampling", sampling(passed=False), "failed_items", "failed_items_missing"),
    ("sampling", sampling(failed_items=["formaldehyde"]), "failed_items", "failed_items_on_pass"),
    ("sampling", sampling(reported_at="2026-03-01T10:00:00+08:00"), "reported_at", "reported_before_sampled"),
    (
        "sampling",
        sampling(passed=False, failed_items=["ph"], test_items=[{"name": "formaldehyde", "passed": False}]),
        "test_items",
        "failed_item_unlisted",
    ),
    ("sampling", sampling(passed="perhaps"), "passed", "bool_type"),
    ("sampling", sampling(source="rumour"), "source", "enum"),
    ("patrol", patrol(severity="catastrophic"), "severity", "enum"),
    ("patrol", patrol(action="ignored"), "action", "enum"),
    ("patrol", patrol(hazard=""), "hazard", "blank"),
]


@pytest.mark.parametrize(
    ("kind", "data", "field", "type_"), REJECTIONS, ids=[f"{r[2]}-{r[3]}" for r in REJECTIONS]
)
def test_every_rejection_names_field_and_reason_and_changes_nothing(
    sessions: sessionmaker[Session], kind: str, data: dict[str, Any], field: str, type_: str
) -> None:
    out = _one(sessions, data, kind)
    assert out.status == "rejected"
    assert (out.errors[0].field, out.errors[0].type) == (field, type_), out.errors
    assert out.errors[0].reason
    assert out.as_dict()["field"] == field and out.as_dict()["reason"]
    assert _count(sessions) == 0


def test_not_an_object_is_rejected(sessions: sessionmaker[Session]) -> None:
    out = _one(sessions, ["S-1"])
    assert out.status == "rejected" and out.errors[0].type == "not_an_object"
    assert "SamplingResult" in out.errors[0].reason


def test_out_of_scope_names_both_counties(sessions: sessionmaker[Session]) -> None:
    out = _one(sessions, sampling(region="653022"), scope_region="653001")
    assert out.status == "rejected" and out.out_of_scope
    assert out.errors[0].field == "region"
    assert "653022 (阿克陶县)" in out.errors[0].reason and "653001 (阿图什市)" in out.errors[0].reason
    assert _count(sessions) == 0
    assert _one(sessions, sampling(region="653001"), scope_region="653001").status == "accepted"


def test_accepts_names_for_region_and_industry(sessions: sessionmaker[Session]) -> None:
    out = _one(sessions, sampling(region="阿克陶县", industry="Textiles and apparel"))
    assert out.status == "accepted"
    with sessions() as s:
        row = s.execute(select(OutboxRecord)).scalar_one()
    payload = json.loads(row.payload)
    assert (row.region, payload["region"], payload["industry"]) == ("653022", "653022", "textiles")
    assert payload["sampled_at"] == "2026-03-02T02:00:00Z"
    assert row.created_at == NOW and row.relayed_at is None and row.attempts == 0


def test_resubmission_returns_the_earlier_outcome_and_writes_nothing(sessions: sessionmaker[Session]) -> None:
    first = _one(sessions, sampling(1))
    later = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    with sessions() as s:
        again = submit_one(s, kind="sampling", data=sampling(1), clock=lambda: later)
    assert (first.status, again.status) == ("accepted", "duplicate")
    assert again.accepted_at == first.accepted_at == NOW
    assert _count(sessions) == 1


def test_same_instant_with_another_offset_is_the_same_content(sessions: sessionmaker[Session]) -> None:
    _one(sessions, sampling(1, sampled_at="2026-03-02T10:00:00+08:00"))
    assert _one(sessions, sampling(1, sampled_at="2026-03-02T02:00:00Z")).status == "duplicate"


EMPTY_SPELLINGS = [
    ({}, {"test_items": []}),
    ({}, {"enterprise_name": ""}),
    ({"enterprise_name": None}, {"enterprise_name": "  "}),
    ({}, {"lab_id": ""}),
    ({"test_items": [{"name": "ph"}]}, {"test_items": [{"name": "ph", "unit": ""}]}),
    ({"test_items": [], "lab_id": ""}, {"test_items": None}),
]


@pytest.mark.parametrize(("first", "second"), EMPTY_SPELLINGS, ids=[str(e[1]) for e in EMPTY_SPELLINGS])
def test_empty_and_absent_optional_fields_are_the_same_content(
    sessions: sessionmaker[Session], first: dict[str, Any], second: dict[str, Any]
) -> None:
    # a blank spreadsheet cell is an absent field; the field app may send "" or [] for the same thing
    assert _one(sessions, sampling(1, **first)).status == "accepted"
    assert _one(sessions, sampling(1, **second)).status == "duplicate"
    assert _one(sessions, sampling(2, **second)).status == "accepted"
    assert _one(sessions, sampling(2, **first)).status == "duplicate"
    assert _count(sessions) == 2


def test_a_record_stored_with_an_empty_text_stays_a_duplicate(sessions: sessionmaker[Session]) -> None:
    # accepted before empty meant absent: its stored payload and hash still carry the ""
    import hashlib

    _one(sessions, sampling(1))
    with sessions() as s:
        row = s.execute(select(OutboxRecord)).scalar_one()
        payload = json.loads(row.payload)
        assert json.dumps(payload, separators=(",", ":"), ensure_ascii=False) == row.payload
        assert payload["enterprise_name"] is None
        payload["enterprise_name"] = ""
        row.payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        row.content_hash = hashlib.sha256(row.payload.encode()).hexdigest()
        s.commit()
    assert _one(sessions, sampling(1, enterprise_name="")).status == "duplicate"
    assert _one(sessions, sampling(1)).status == "duplicate"
    assert _one(sessions, sampling(1, enterprise_name="喀什某厂")).conflict
    assert _count(sessions) == 1


def test_same_id_with_different_content_is_a_conflict_naming_the_id(sessions: sessionmaker[Session]) -> None:
    _one(sessions, sampling(1))
    out = _one(sessions, sampling(1, product="wool scarf"))
    assert out.status == "rejected" and out.conflict
    assert out.errors[0].field == "id" and "'S-1'" in out.errors[0].reason
    assert _count(sessions) == 1


def test_a_conflict_names_the_fields_that_differ(sessions: sessionmaker[Session]) -> None:
    _one(sessions, sampling(1))
    out = _one(sessions, sampling(1, product="wool scarf", reported_at="2026-03-03T10:00:00+08:00"))
    assert out.conflict and "(reported_at, product differ)" in out.errors[0].reason
    with sessions() as s:  # an earlier row of the same batch, too
        rows = [RawRow(1, sampling(2)), RawRow(2, sampling(2, inspector_id="insp-9"))]
        second = submit_many(s, kind="sampling", rows=rows, clock=clock)[1]
    assert second.conflict and "(inspector_id differ" in second.errors[0].reason


def test_ids_are_per_kind(sessions: sessionmaker[Session]) -> None:
    assert _one(sessions, sampling(id="X-1")).status == "accepted"
    assert _one(sessions, patrol(id="X-1"), "patrol").status == "accepted"


def test_mixed_batch_gives_one_outcome_per_row_and_keeps_the_good_rows(
    sessions: sessionmaker[Session],
) -> None:
    _one(sessions, sampling(1))
    rows = [
        RawRow(1, sampling(1)),  # duplicate of an earlier submission
        RawRow(2, sampling(2)),  # good
        RawRow(3, sampling(3, region="nowhere")),  # bad
        RawRow(4, sampling(1, product="other")),  # conflict with the earlier one
        RawRow(5, sampling(5, passed=False, failed_items=["甲醛"])),  # good, item normalised
        RawRow(6, sampling(5, passed=False, failed_items=["甲醛"])),  # repeated within the batch
        RawRow(7, sampling(5, passed=True)),  # same id, other content, within the batch
        RawRow(8, None),
    ]
    with sessions() as s:
        outs = submit_many(s, kind="sampling", rows=rows, clock=clock)
    got = [(o.row, o.status, o.errors[0].type if o.errors else None) for o in outs]
    assert got == [
        (1, "duplicate", None),
        (2, "accepted", None),
        (3, "rejected", "unknown_region"),
        (4, "rejected", "conflict"),
        (5, "accepted", None),
        (6, "duplicate", None),
        (7, "rejected", "conflict"),
        (8, "rejected", "not_an_object"),
    ]
    s = summarise(outs)
    assert (s.accepted, s.duplicate, s.rejected, s.total) == (2, 2, 4, 8)
    assert _count(sessions) == 3


def test_rows_with_parse_errors_are_rejected_with_them(sessions: sessionmaker[Session]) -> None:
    from schemas import FieldError

    bad = RawRow(4, {"id": "S-9"}, (FieldError("sampled_at", "not a date", "unreadable_cell"),))
    with sessions() as s:
        (out,) = submit_many(s, kind="sampling", rows=[bad], clock=clock)
    assert (out.row, out.id, out.status, out.errors[0].field) == (4, "S-9", "rejected", "sampled_at")


def test_large_batches_are_committed_in_chunks(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stream.ingest.service as service

    monkeypatch.setattr(service, "CHUNK_ROWS", 3)
    seen: list[int] = []
    rows = [RawRow(n, sampling(n)) for n in range(1, 9)]
    with sessions() as s:
        outs = submit_many(s, kind="sampling", rows=rows, clock=clock, on_chunk=lambda c: seen.append(len(c)))
    assert seen == [3, 3, 2] and all(o.status == "accepted" for o in outs)
    assert _count(sessions) == 8


def test_canonical_record_is_stable_and_hash_tracks_content() -> None:
    from schemas import SamplingResult
    from schemas.records import validation_context

    ctx = validation_context(None, NOW)
    a = SamplingResult.model_validate(sampling(1), context=ctx)
    b = SamplingResult.model_validate(sampling(1, sampled_at="2026-03-02T02:00:00+00:00"), context=ctx)
    c = SamplingResult.model_validate(sampling(1, inspector_id="insp-2"), context=ctx)
    assert canonical_record(a, RecordKind.sampling) == canonical_record(b, RecordKind.sampling)
    assert canonical_record(a, RecordKind.sampling)[1] != canonical_record(c, RecordKind.sampling)[1]


def test_group_writer_accepts_concurrent_submissions_once(sessions: sessionmaker[Session]) -> None:
    import asyncio

    from schemas import default_catalogue
    from stream.ingest.writer import GroupWriter

    wakes: list[int] = []
    writer = GroupWriter(
        session_factory=sessions,
        catalogue=default_catalogue(),
        clock=clock,
        on_accepted=lambda: wakes.append(1),
    )

    async def burst() -> list[Any]:
        jobs = [sampling(n) for n in range(1, 16)] + [sampling(1)] * 4 + [sampling(2, product="other")]
        return await asyncio.gather(
            *(
                writer.submit(kind=RecordKind.sampling, data=d, submitted_by="x", scope_region=None)
                for d in jobs
            )
        )

    try:
        outs = asyncio.run(burst())
    finally:
        writer.close()
    assert [o.status for o in outs[:15]] == ["accepted"] * 15
    assert [o.status for o in outs[15:19]] == ["duplicate"] * 4
    assert outs[19].conflict
    assert _count(sessions) == 15 and wakes


def test_a_large_chunk_is_stored_whole(sessions: sessionmaker[Session]) -> None:
    rows = [RawRow(n, sampling(n)) for n in range(1, 301)]  # COPY on PostgreSQL
    with sessions() as s:
        outs = submit_many(s, kind="sampling", rows=rows, clock=clock, submitted_by="lab")
    assert all(o.status == "accepted" for o in outs) and _count(sessions) == 300
    with sessions() as s:
        row = s.execute(select(OutboxRecord).where(OutboxRecord.record_id == "S-300")).scalar_one()
    assert (row.kind, row.region, row.submitted_by, row.created_at, row.attempts) == (
        "sampling",
        "653022",
        "lab",
        NOW,
        0,
    )
    assert json.loads(row.payload)["id"] == "S-300" and row.relayed_at is None


def test_an_id_another_writer_commits_meanwhile_becomes_a_duplicate(sessions: sessionmaker[Session]) -> None:
    """Another writer commits one of the ids between this chunk's lookup and its insert (a lab
    uploading the same file twice at once): the chunk is retried, not failed, also on COPY."""
    from sqlalchemy import event, insert

    from schemas import SamplingResult
    from schemas.records import validation_context

    engine = sessions.kw["bind"]
    first = SamplingResult.model_validate(sampling(1), context=validation_context(None, NOW))
    payload, digest = canonical_record(first, RecordKind.sampling)
    raced: list[bool] = []

    def other_writer_commits(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not raced and "content_hash" in statement and statement.lstrip().upper().startswith("SELECT"):
            raced.append(True)
            with engine.begin() as other:
                other.execute(
                    insert(OutboxRecord).values(
                        kind="sampling",
                        record_id="S-1",
                        region=first.region,
                        payload=payload,
                        content_hash=digest,
                        created_at=NOW,
                    )
                )

    event.listen(engine, "after_cursor_execute", other_writer_commits)
    try:
        rows = [RawRow(n, sampling(n)) for n in range(1, 251)]  # COPY on PostgreSQL
        with sessions() as s:
            outs = submit_many(s, kind="sampling", rows=rows, clock=clock)
    finally:
        event.remove(engine, "after_cursor_execute", other_writer_commits)
    assert raced
    assert outs[0].status == "duplicate"
    assert all(o.status == "accepted" for o in outs[1:])
    assert _count(sessions) == 250


def test_a_lab_sheet_with_a_same_day_report_date_is_accepted_once(sessions: sessionmaker[Session]) -> None:
    from ingest_cases import uscc

    from stream.ingest import parse_table

    sheet = (
        "抽样编号,抽样日期,区县,行业,产品名称,统一社会信用代码,检验结论,抽样人员,报告日期\n"
        f"L-1,2026-03-02 10:30,653022,textiles,围巾,{uscc(3)},合格,张三,2026-03-02\n"
        f"L-2,2026-03-02,653022,textiles,围巾,{uscc(3)},合格,张三,2026-03-02\n"
        f"L-3,2026-03-02 10:30,653022,textiles,围巾,{uscc(3)},合格,张三,2026-03-01\n"
    ).encode()
    for expected in (["accepted", "accepted", "rejected"], ["duplicate", "duplicate", "rejected"]):
        with sessions() as s:
            out = submit_many(s, kind="sampling", rows=parse_table(sheet, filename="lab.csv"), clock=clock)
        assert [o.status for o in out] == expected
        assert (out[2].errors[0].field, out[2].errors[0].type) == ("reported_at", "reported_before_sampled")
    with sessions() as s:
        stored = {r.record_id: json.loads(r.payload) for r in s.execute(select(OutboxRecord)).scalars()}
    assert stored["L-1"]["reported_at"] == stored["L-1"]["sampled_at"] == "2026-03-02T02:30:00Z"
    assert stored["L-2"]["reported_at"] == "2026-03-01T16:00:00Z"


WIDTHS = [
    {"enterprise_name": "阿克陶县某服装厂（分厂）"},
    {"lab_id": "克州质检所（检测中心）", "inspector_id": "ＩＮＳ－００７"},
    {"test_items": [{"name": "ph", "value": 6.9, "unit": "ｍｇ／ｋｇ"}]},
]


@pytest.mark.parametrize("typed", WIDTHS, ids=[next(iter(w)) for w in WIDTHS])
def test_full_width_and_half_width_text_is_the_same_content(
    sessions: sessionmaker[Session], typed: dict[str, Any]
) -> None:
    # the field app keeps what was typed, a lab sheet reads its cells half-width (NFKC): a record
    # pushed from the field and then listed on the lab's sheet is one record, not a conflict
    import unicodedata

    half = json.loads(unicodedata.normalize("NFKC", json.dumps(typed, ensure_ascii=False)))
    assert half != typed
    assert _one(sessions, sampling(1, **typed)).status == "accepted"
    assert _one(sessions, sampling(1, **half)).status == "duplicate"
    assert _one(sessions, sampling(2, **half)).status == "accepted"
    assert _one(sessions, sampling(2, **typed)).status == "duplicate"
    with sessions() as s:  # in one batch too
        out = submit_many(
            s,
            kind="sampling",
            rows=[RawRow(1, sampling(3, **typed)), RawRow(2, sampling(3, **half))],
            clock=clock,
        )
    assert [o.status for o in out] == ["accepted", "duplicate"]
    assert _one(sessions, sampling(1, **half, product="wool scarf")).conflict
    assert _count(sessions) == 3


def test_an_id_typed_full_width_is_the_id_a_lab_sheet_reads_half_width(
    sessions: sessionmaker[Session],
) -> None:
    # the field app keeps what was typed (ＳＨ－２０２６－０１), the lab sheet reads the same id half-width:
    # one record, counted once, whichever comes first
    assert _one(sessions, sampling(1, id="ＳＨ－２０２６－０１")).status == "accepted"
    assert _one(sessions, sampling(1, id="SH-2026-01")).status == "duplicate"
    assert _one(sessions, sampling(1, id="SH-2026-02")).status == "accepted"
    assert _one(sessions, sampling(1, id="ＳＨ－２０２６－０２")).status == "duplicate"
    with sessions() as s:
        assert sorted(s.execute(select(OutboxRecord.record_id)).scalars()) == ["SH-2026-01", "SH-2026-02"]
