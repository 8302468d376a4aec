"""Preparing on worker processes gives exactly the in-process outcomes, stored rows and metrics."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_cases import clock, sampling, store, uscc
from sqlalchemy import select

from schemas import default_catalogue
from stream.ingest import OutboxRecord, RawRow, parse_table, submit_many, submit_one
from stream.ingest.metrics import RECORDS
from stream.ingest.pool import close_pools, shared_pool

HEADER = "抽样编号,抽样日期,区县,行业,产品名称,统一社会信用代码,检验结论,不合格项目,抽样人员"


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import stream.ingest.service as service

    monkeypatch.setattr(service, "CHUNK_ROWS", 3)
    yield
    close_pools()


def _mixed_csv() -> bytes:
    lines = [HEADER]
    for n in range(1, 15):
        lines.append(f"L-{n},2026-03-0{1 + n % 8},阿克陶县,纺织服装,棉T恤,{uscc(n)},合格,,张三")
    lines.insert(3, f"L-bad,someday,阿克陶县,纺织服装,棉T恤,{uscc(1)},合格,,张三")  # unreadable date
    lines.insert(5, f"L-2,2026-03-03,阿克陶县,纺织服装,棉T恤,{uscc(2)},合格,,张三")  # duplicate in file
    lines.insert(6, f"L-3,2026-03-02,乌恰县,建材,水泥,{uscc(3)},合格,,李四")  # changed: conflict
    lines.insert(8, f"L-x,2026-03-02,火星,纺织服装,棉T恤,{uscc(4)},合格,,张三")  # unknown county
    lines.insert(9, "")  # a blank line
    lines.append(f"L-99,2026-03-02,阿克陶县,纺织服装,棉T恤,{uscc(5)},不合格,,张三")  # no failed items
    return ("\n".join(lines) + "\n").encode("utf-8")


def _counts() -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for metric in RECORDS.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }


def _run(tmp_path: Path, name: str, workers: int, rows: Any) -> tuple[list[Any], list[Any], dict[Any, float]]:
    before = _counts()
    with store("sqlite", tmp_path / name) as sessions:
        with sessions() as s:  # accepted before with other content: L-5 of the file is a conflict
            submit_one(s, kind="sampling", data=sampling(5, id="L-5"), clock=clock)
        table = rows() if callable(rows) else rows
        with sessions() as s:
            outcomes = submit_many(s, kind="sampling", rows=table, clock=clock, workers=workers)
        with sessions() as s:
            stored = s.execute(
                select(OutboxRecord.record_id, OutboxRecord.payload, OutboxRecord.content_hash).order_by(
                    OutboxRecord.seq
                )
            ).all()
    after = _counts()
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    return [o.as_dict() for o in outcomes], [tuple(r) for r in stored], delta


def test_a_mixed_file_on_workers_matches_in_process(tmp_path: Path) -> None:
    content = _mixed_csv()

    def table() -> Any:
        return parse_table(content, filename="lab.csv", kind="sampling")

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    local = _run(tmp_path, "a", 0, table)
    pooled = _run(tmp_path, "b", 2, table)
    assert pooled == local
    statuses = [o["status"] for o in local[0]]
    assert statuses.count("accepted") == 13 and statuses.count("duplicate") == 1
    assert [o["row"] for o in local[0]][:3] == [2, 3, 4] and len(statuses) == 19  # the blank line skipped
    assert {o["errors"][0]["type"] for o in local[0] if o["status"] == "rejected"} == {
        "unreadable_cell",
        "conflict",
        "unknown_region",
        "failed_items_missing",
    }


def test_a_json_batch_on_workers_matches_in_process(tmp_path: Path) -> None:
    rows = [RawRow(n, sampling(n)) for n in range(1, 11)] + [RawRow(11, ["not", "an", "object"])]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _run(tmp_path, "b", 2, rows) == _run(tmp_path, "a", 0, rows)


def test_dead_workers_fall_back_to_this_process(tmp_path: Path) -> None:
    rows = [RawRow(n, sampling(n)) for n in range(1, 8)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    expected = _run(tmp_path, "a", 0, rows)
    pool = shared_pool(default_catalogue(), 2)
    (tmp_path / "warm").mkdir()
    with store("sqlite", tmp_path / "warm") as sessions, sessions() as s:
        submit_many(s, kind="sampling", rows=[RawRow(n, sampling(100 + n)) for n in range(7)], workers=2)
    for process in list(pool._executor._processes.values()):  # type: ignore[attr-defined]
        os.kill(process.pid, signal.SIGKILL)
    assert _run(tmp_path, "b", 2, rows) == expected
    assert pool.broken and shared_pool(default_catalogue(), 2) is not pool
