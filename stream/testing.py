"""Checking a running stream against the in-process engine: used by the integration tests and benches.

It drives ``qualitywatch worker`` processes, waits until their checkpoints cover every input message,
reads the output topics back and compares them, with the final stage state, to what
:class:`~detectors.engine.DetectionEngine` (the code ``qualitywatch replay`` runs) makes of the
same records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.base import CellWeek
from detectors.engine import DetectionEngine, EngineConfig
from schemas import PatrolReport, SamplingResult, default_catalogue

from .checkpoint import CheckpointStore, decode_state
from .codec import Rejection, check_cell_week, decode_cell_week, decode_record
from .readback import read_topic
from .settings import StreamSettings
from .stages import CellWeekPartition, PatrolPartition, SamplingPartition
from .topics import Topics

__all__ = [
    "Reference",
    "StreamResult",
    "WorkerProc",
    "assert_parity",
    "checkpoint_offsets",
    "collect",
    "reference_run",
    "settings_env",
    "wait_done",
    "wait_offsets",
]


@dataclass
class Reference:
    """What the in-process engine (``qualitywatch replay``'s code) makes of the same lines."""

    warnings: dict[str, dict[str, Any]]
    cells: dict[tuple[str, str, datetime], CellWeek]
    region_counts: dict[str, dict[str, int]]
    patrol_counts: dict[str, dict[str, int]]


def reference_run(sampling: list[bytes], patrols: list[bytes], epoch: datetime) -> Reference:
    cat = default_catalogue()
    cells: list[CellWeek] = []

    class Engine(DetectionEngine):
        def _downstream(self, c: list[CellWeek]) -> list[Any]:
            cells.extend(c)
            return super()._downstream(c)

    engine = Engine(cat, EngineConfig(epoch=epoch))
    warnings = []
    for raw in sampling:
        rec = decode_record(raw, SamplingResult, cat)
        if not isinstance(rec, Rejection):
            warnings += engine.process_sampling(rec)[1]
    for raw in patrols:
        rep = decode_record(raw, PatrolReport, cat)
        if isinstance(rep, PatrolReport):
            warnings += engine.process_patrol(rep)[1]
    return Reference(
        warnings={w.id: json.loads(w.model_dump_json()) for w in warnings},
        cells={(c.region, c.industry, c.week_start): c for c in cells},
        region_counts={
            k: dict(v.counts)
            for k, v in engine.regions.items()
            if v.counts["accepted"] or v.counts["duplicate"]
        },
        patrol_counts={k: dict(v.counts) for k, v in engine.patrols.items() if v.counts["accepted"]},
    )


def settings_env(settings: StreamSettings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, datetime):
            value = value.isoformat()
        env[f"QW_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@dataclass
class WorkerProc:
    """``qualitywatch worker`` in a subprocess, its log in a file."""

    settings: StreamSettings
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> WorkerProc:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from qualitywatch.cli import main; main()",
                "worker",
                "--loglevel",
                "info",
            ],
            env=settings_env(self.settings),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def assigned(self) -> set[str]:
        """Partitions this worker was assigned at some point (from its log)."""
        out = set()
        for line in self.log.read_text(errors="replace").splitlines():
            if "] assigned " in line and " from offset " in line:
                out.add(line.split("] assigned ", 1)[1].split(" from offset ")[0])
        return out


def checkpoint_offsets(settings: StreamSettings) -> dict[tuple[str, int], int]:
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    try:
        return {(c.topic, c.partition): c.next_offset for c in store.load_all()}
    finally:
        store.close()


def wait_offsets(
    settings: StreamSettings, expected: dict[tuple[str, int], int], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = checkpoint_offsets(settings)
        if all(got.get(k, 0) >= v for k, v in expected.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"checkpoints did not reach {expected}: {got}")
        time.sleep(0.2)


def wait_done(
    settings: StreamSettings, end_offsets: dict[tuple[str, int], int], timeout: float = 120
) -> None:
    """Until the checkpoints cover every input message and every cell-week they caused."""
    wait_offsets(settings, end_offsets, timeout)
    topics = Topics.from_settings(settings)
    cw: dict[tuple[str, int], int] = {}
    for m in read_topic(settings, topics.cell_weeks):
        cw[(m.topic, m.partition)] = max(cw.get((m.topic, m.partition), 0), m.offset + 1)
    wait_offsets(settings, cw, timeout)


@dataclass
class StreamResult:
    warnings: dict[str, dict[str, Any]]
    warning_copies: int
    cells: dict[tuple[str, str, datetime], CellWeek]
    region_counts: dict[str, dict[str, int]]
    patrol_counts: dict[str, dict[str, int]]
    cells_seen: dict[int, int]


def collect(settings: StreamSettings) -> StreamResult:
    """The stream's output and final state; asserts that every re-sent output is identical."""
    topics = Topics.from_settings(settings)
    catalogue = default_catalogue()
    zone, now = catalogue.zone, datetime.now(UTC)
    assert settings.epoch is not None
    epoch = settings.epoch.astimezone(zone)
    warnings: dict[str, dict[str, Any]] = {}
    raw_w = read_topic(settings, topics.warnings)
    for m in raw_w:
        assert m.value is not None
        doc = json.loads(m.value)
        assert m.key == doc["fingerprint"].encode()
        assert warnings.setdefault(doc["id"], doc) == doc, f"warning {doc['id']} re-sent with other content"
    cells: dict[tuple[str, str, datetime], CellWeek] = {}
    for m in read_topic(settings, topics.cell_weeks):
        if m.partition != 0:
            continue
        cell = decode_cell_week(m.value, zone)
        if isinstance(cell, Rejection) or check_cell_week(cell, catalogue, epoch, now):
            continue  # poison put there on purpose: the worker dead-letters it
        key = (cell.region, cell.industry, cell.week_start)
        assert cells.setdefault(key, cell) == cell, f"cell-week {key} re-sent with other content"
    store = CheckpointStore(settings.checkpoint_url, settings.group_id)
    region_counts: dict[str, dict[str, int]] = {}
    patrol_counts: dict[str, dict[str, int]] = {}
    cells_seen: dict[int, int] = {}
    try:
        for cp in store.load_all():
            state = decode_state(cp.state)
            if isinstance(state, SamplingPartition):
                region_counts.update({k: dict(v.counts) for k, v in state.stages.items()})
            elif isinstance(state, PatrolPartition):
                patrol_counts.update({k: dict(v.counts) for k, v in state.stages.items()})
            elif isinstance(state, CellWeekPartition):
                cells_seen[cp.partition] = state.cells_seen
    finally:
        store.close()
    return StreamResult(warnings, len(raw_w), cells, region_counts, patrol_counts, cells_seen)


def assert_parity(result: StreamResult, ref: Reference) -> None:
    assert result.region_counts == ref.region_counts
    assert result.patrol_counts == ref.patrol_counts
    assert set(result.cells) == set(ref.cells)
    for key, cell in ref.cells.items():
        got = result.cells[key]
        assert (got.tested, got.failed, got.failed_ids, got.item_failures) == (
            cell.tested,
            cell.failed,
            cell.failed_ids,
            cell.item_failures,
        ), key
    missing = sorted(
        (ref.warnings[k]["detector"], ref.warnings[k]["summary"])
        for k in set(ref.warnings) - set(result.warnings)
    )
    extra = sorted(
        (result.warnings[k]["detector"], result.warnings[k]["summary"])
        for k in set(result.warnings) - set(ref.warnings)
    )
    assert not missing and not extra, {
        "missing": missing[:10],
        "extra": extra[:10],
        "n_ref": len(ref.warnings),
    }
    for wid, doc in ref.warnings.items():
        emitted = result.warnings[wid]
        for f in ("fingerprint", "level", "status", "kind", "window_start", "window_end", "evidence"):
            assert emitted[f] == doc[f], (wid, f)
