"""Offline replay: JSONL records through the same :class:`~detectors.engine.DetectionEngine` the stream runs.

``replay`` reads sampling results (and optionally patrol reports) a few hundred lines at a time,
validates each line against the wire contract with a fixed validation clock, merges the two files by
event time with a streaming merge (each file is assumed roughly time-ordered; the engine restores
order within ``EngineConfig.allowed_lateness``), hands every valid record to the engine and passes
each warning to a sink. Bad lines are reported (source, line number, field, reason) and skipped; they
never stop the replay. Memory is bounded by the engine's state, never by the size of the files.

The first week watched is the week of the earliest record seen within ``allowed_lateness`` of the
first record, so a file that starts slightly out of order gives the same result as the sorted file.
"""

from __future__ import annotations

import gc
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from io import BufferedReader
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, cast
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from detectors import DetectionEngine, EngineConfig
from schemas import (
    Catalogue,
    FieldError,
    PatrolReport,
    RiskWarning,
    SamplingResult,
    default_catalogue,
    field_errors,
    validation_context,
)
from schemas.fastpath import SamplingDecoder
from schemas.weeks import week_start

__all__ = [
    "PROGRESS_CHUNK",
    "BadLine",
    "ReplayError",
    "ReplayStats",
    "SourceStats",
    "replay",
]

#: bytes of whole lines read and validated at a time (several hundred records), and so between two
#: progress callbacks (a callback per line would cost more than the line)
PROGRESS_CHUNK = 1 << 18
#: read buffer of the input files
_BUFFER = 1 << 20
#: at most this many records are held to find the first week (see the module docstring)
_EPOCH_LOOKAHEAD = 20_000
#: at most this many characters of a rejected line are kept in its report
_TEXT_LIMIT = 2_000
#: allocations between two young-generation collections during a replay (the default is 700); records
#: hold no reference cycles, so collecting less often saves time and changes nothing else
_GC_GEN0 = 50_000


class ReplayError(Exception):
    """An input file cannot be opened or read (bad lines inside a readable file are not errors)."""


@dataclass(frozen=True, slots=True)
class BadLine:
    """One rejected input line: where it is and every field that is wrong, with the reason."""

    source: str
    line: int
    errors: tuple[FieldError, ...]
    text: str = ""

    @property
    def field(self) -> str:
        return self.errors[0].field

    @property
    def reason(self) -> str:
        return self.errors[0].reason

    def describe(self) -> str:
        """``events.jsonl:17: enterprise_id: ... ; passed: ...`` (one line for a terminal)."""
        return f"{self.source}:{self.line}: " + "; ".join(str(e) for e in self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "errors": [e.as_dict() for e in self.errors],
            "text": self.text,
        }


@dataclass
class SourceStats:
    """Counts for one input file."""

    path: str
    lines: int = 0
    rejected: int = 0
    accepted: int = 0
    duplicate: int = 0
    late: int = 0
    before_epoch: int = 0


@dataclass
class ReplayStats:
    """What a replay did: per-file counts and the warnings written by kind, level and status."""

    sources: list[SourceStats] = field(default_factory=list)
    warnings: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @property
    def warnings_written(self) -> int:
        return sum(self.warnings.values())

    def total(self, name: str) -> int:
        return sum(int(getattr(s, name)) for s in self.sources)

    def summary_lines(self) -> list[str]:
        """A short human summary (what ``qualitywatch replay`` prints on stderr)."""
        out = []
        for s in self.sources:
            out.append(
                f"{s.path}: {s.lines:,} lines read, {s.accepted:,} accepted, {s.duplicate:,} duplicates, "
                f"{s.late:,} late, {s.before_epoch:,} before the first week, {s.rejected:,} rejected"
            )
        out.append(f"{self.warnings_written:,} warnings written")
        for (kind, level, status), n in sorted(self.warnings.items()):
            out.append(f"  {kind:<10} {level:<6} {status:<8} {n:,}")
        return out


def _bad_line(source: str, lineno: int, line: bytes, exc: ValidationError) -> BadLine:
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text.strip():
        errors: tuple[FieldError, ...] = (FieldError("", "blank line", "blank_line"),)
    else:
        errors = tuple(field_errors(exc))
    return BadLine(source=source, line=lineno, errors=errors, text=text[:_TEXT_LIMIT])


def _valid_chunks(
    fh: IO[bytes],
    stats: SourceStats,
    validate: Callable[[bytes], Any],
    on_bad_line: Callable[[BadLine], None] | None,
    on_progress: Callable[[int], None] | None,
) -> Iterator[list[Any]]:
    """Yield the valid records of one file, a list per read of about ``PROGRESS_CHUNK`` bytes; report
    the others. The hot loop of a replay: a list per read rather than a generator step per record."""
    lineno = 0  # lines read before this list
    try:
        while lines := fh.readlines(PROGRESS_CHUNK):
            valid: list[Any] = []
            keep = valid.append
            for n, line in enumerate(lines, lineno + 1):
                try:
                    keep(validate(line))
                except ValidationError as exc:
                    stats.rejected += 1
                    if on_bad_line is not None:
                        on_bad_line(_bad_line(stats.path, n, line, exc))
            lineno += len(lines)
            if on_progress is not None:
                on_progress(sum(map(len, lines)))
            yield valid
    except OSError as exc:
        raise ReplayError(f"{stats.path}: read failed after line {lineno}: {exc.strerror or exc}") from exc
    finally:
        stats.lines = lineno


def _sampling_time(record: SamplingResult) -> datetime:
    return record.sampled_at


def _patrol_time(record: PatrolReport) -> datetime:
    return record.patrolled_at


def _tagged(
    records: Iterable[Any], tag: int, when: Callable[[Any], datetime]
) -> Iterator[tuple[datetime, int, Any]]:
    for r in records:
        yield when(r).astimezone(UTC), tag, r


def _first_week(
    chunks: Iterator[list[Any]], when: Callable[[Any], datetime], catalogue: Catalogue, config: EngineConfig
) -> tuple[datetime | None, Iterator[list[Any]]]:
    """The first week to watch, and the lists of records with those read to find it put back in front."""
    head: list[list[Any]] = []
    first = earliest = None
    seen = 0
    for chunk in chunks:
        head.append(chunk)
        for item in chunk:
            t = when(item)
            if first is None:
                first = earliest = t
            elif t < earliest:  # type: ignore[operator]
                earliest = t
            seen += 1
            if t > first + config.allowed_lateness or seen >= _EPOCH_LOOKAHEAD:
                break
        else:
            continue
        break
    epoch = week_start(earliest, ZoneInfo(catalogue.timezone)) if earliest is not None else None
    return epoch, chain(head, chunks)


def _in_lists(items: Iterator[Any], size: int = 512) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    while chunk := list(islice(items, size)):
        yield chunk


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect the young generation less often while replaying (restored afterwards)."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], _GC_GEN0), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


#: how a file that is not UTF-8 JSON lines starts, and what to do about it
_NOT_JSONL = {
    b"\x1f\x8b": "is gzip-compressed: decompress it first (gunzip -k)",
    b"\xff\xfe": "is UTF-16 text: save it as UTF-8",
    b"\xfe\xff": "is UTF-16 text: save it as UTF-8",
}
_UTF8_BOM = b"\xef\xbb\xbf"


def _open_binary(path: str | Path) -> BufferedReader:
    return cast(BufferedReader, open(path, "rb", buffering=_BUFFER))


def _open(path: str | Path) -> IO[bytes]:
    """Open an input; skip a UTF-8 byte-order mark, refuse a compressed or UTF-16 file as a whole."""
    try:
        fh = _open_binary(path)
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        head = fh.peek(len(_UTF8_BOM))[: len(_UTF8_BOM)]
    except OSError as exc:
        fh.close()
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head.startswith(_UTF8_BOM):
        fh.read(len(_UTF8_BOM))
    elif (why := _NOT_JSONL.get(head[:2])) is not None:
        fh.close()
        raise ReplayError(f"{path} {why}")
    return fh


def replay(
    events: str | Path | None,
    *,
    write: Callable[[RiskWarning], object],
    patrols: str | Path | None = None,
    catalogue: Catalogue | None = None,
    now: datetime | None = None,
    flush: bool = True,
    config: EngineConfig | None = None,
    on_bad_line: Callable[[BadLine], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Replay sampling results (``events``) and patrol reports (``patrols``) through the engine.

    ``write`` receives every warning in the order the engine emits them. ``now`` is the validation
    clock (records later than it or older than ``schemas.records.MAX_AGE`` before it are refused;
    default: the wall clock, UTC). ``flush`` closes the weeks still open at the end of the input.
    ``config`` defaults to ``EngineConfig(batch_scoring=True)``: the outlier model decides records in
    batches, which gives the warnings a stream would give, some of them later in the output.
    Raises :class:`ReplayError` when a file cannot be opened or read.
    """
    cat = catalogue or default_catalogue()
    clock = now if now is not None else datetime.now(UTC)
    if clock.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    context = validation_context(cat, clock)
    cfg = config or EngineConfig(batch_scoring=True)
    stats = ReplayStats()
    files: list[IO[bytes]] = []
    try:
        streams: list[tuple[Iterator[list[Any]], SourceStats]] = []
        validators: tuple[Callable[[bytes], Any], Callable[[bytes], Any]] = (
            SamplingDecoder(cat, now=clock).decode,
            partial(PatrolReport.model_validate_json, context=context),
        )
        for path, validate in zip((events, patrols), validators, strict=True):
            if path is None:
                continue
            fh = _open(path)
            files.append(fh)
            src = SourceStats(path=str(path))
            stats.sources.append(src)
            streams.append((_valid_chunks(fh, src, validate, on_bad_line, on_progress), src))
        with _fewer_collections():
            engine = _run(streams, events is not None, cat, cfg, write, stats, flush)
    finally:
        for fh in files:
            fh.close()
    _collect_outcomes(engine, stats, events is not None, patrols is not None)
    return stats


def _run(
    streams: list[tuple[Iterator[list[Any]], SourceStats]],
    has_events: bool,
    cat: Catalogue,
    cfg: EngineConfig,
    write: Callable[[RiskWarning], object],
    stats: ReplayStats,
    flush: bool,
) -> DetectionEngine:
    counter = stats.warnings

    def emit(warnings: list[RiskWarning]) -> None:
        for w in warnings:
            counter[(w.kind.value, w.level.value, w.status.value)] += 1
            write(w)

    if len(streams) == 1:
        when = _sampling_time if has_events else _patrol_time
        chunks = streams[0][0]
        epoch, chunks = _first_week(chunks, when, cat, cfg) if cfg.epoch is None else (cfg.epoch, chunks)
        engine = DetectionEngine(cat, replace(cfg, epoch=epoch))
        if has_events:
            for chunk in chunks:
                emit(engine.process_samplings(chunk))
        else:
            for chunk in chunks:
                for report in chunk:
                    emit(engine.process_patrol(report)[1])
    else:
        merged = _in_lists(
            heapq.merge(
                _tagged(chain.from_iterable(streams[0][0]), 0, _sampling_time),
                _tagged(chain.from_iterable(streams[1][0]), 1, _patrol_time),
                key=itemgetter(0),
            )
        )
        epoch, tagged = (
            _first_week(merged, itemgetter(0), cat, cfg) if cfg.epoch is None else (cfg.epoch, merged)
        )
        engine = DetectionEngine(cat, replace(cfg, epoch=epoch))
        processes = (engine.process_sampling, engine.process_patrol)
        for chunk in tagged:
            for _when, tag, record in chunk:
                _outcome, warnings = processes[tag](record)
                if warnings:
                    emit(warnings)
    if flush:
        emit(engine.flush())
    return engine


def _collect_outcomes(
    engine: DetectionEngine, stats: ReplayStats, has_events: bool, has_patrols: bool
) -> None:
    """Copy the engine's per-stage outcome counts into the per-file statistics."""
    groups: list[list[Any]] = []
    if has_events:
        groups.append(list(engine.regions.values()))
    if has_patrols:
        groups.append(list(engine.patrols.values()))
    for src, stages in zip(stats.sources, groups, strict=True):
        for name in ("accepted", "duplicate", "late", "before_epoch"):
            setattr(src, name, sum(s.counts.get(name, 0) for s in stages))
