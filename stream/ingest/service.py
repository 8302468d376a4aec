"""Accepting inspectors' records: validate, check scope and idempotency, write the outbox.

Keyword-only functions over a SQLAlchemy session. Each input row gets one :class:`RowOutcome`:

* ``accepted`` — valid and new: committed to the outbox (relayed to Kafka later);
* ``duplicate`` — its id was accepted before with the same content: the earlier outcome is returned
  and nothing new is written or published;
* ``rejected`` — with the field and the reason: invalid, out of the submitter's county scope, or the
  id was accepted before with *different* content (``type == "conflict"``). A rejected row changes
  nothing; the good rows around it are still accepted.

Content is compared through a SHA-256 hash of the canonical record: the validated, normalised record
(region and industry resolved to code and slug, names folded by the catalogue, timestamps in UTC)
serialised as compact JSON in field order.

Large inputs can be validated on worker processes (``workers``, see :mod:`.pool`): a chunk is
prepared (cells converted, record validated, canonical JSON and hash built) on a worker while this
process looks up, inserts and commits the chunks before it, in input order; the outcomes are the same
as in-process.
"""

from __future__ import annotations

import hashlib
import json
import threading
import unicodedata
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from schemas import Catalogue, FieldError, PatrolReport, SamplingResult, default_catalogue, field_errors
from schemas.errors import whole_characters
from schemas.records import validation_context

from . import metrics
from .models import OutboxRecord, RecordKind

__all__ = [
    "CHUNK_ROWS",
    "ChunkedRows",
    "Clock",
    "Label",
    "ListedRows",
    "Prepared",
    "RawRow",
    "RowChunk",
    "RowOutcome",
    "Summary",
    "canonical_record",
    "metric_labels",
    "prepare_rows",
    "submit_many",
    "submit_one",
    "summarise",
]

Clock = Callable[[], datetime]
Status = Literal["accepted", "duplicate", "rejected"]

#: rows validated, looked up and committed together (bounded memory and transaction size)
CHUNK_ROWS = 2000
_MODELS: dict[RecordKind, type[SamplingResult] | type[PatrolReport]] = {
    RecordKind.sampling: SamplingResult,
    RecordKind.patrol: PatrolReport,
}
_COPY_FROM = 200  # rows from which COPY beats an executemany on PostgreSQL
_T: Table = OutboxRecord.__table__  # type: ignore[assignment]
_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()
_TIME_FIELDS = {RecordKind.sampling: ("sampled_at", "reported_at"), RecordKind.patrol: ("patrolled_at",)}


@dataclass(frozen=True, slots=True)
class RawRow:
    """One input row: its 1-based position in the file or batch, the fields, and any parse errors."""

    row: int
    data: Any
    errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of one row."""

    row: int
    id: str | None
    status: Status
    errors: tuple[FieldError, ...] = ()
    accepted_at: datetime | None = None

    @property
    def conflict(self) -> bool:
        return any(e.type == "conflict" for e in self.errors)

    @property
    def out_of_scope(self) -> bool:
        return any(e.type == "out_of_scope" for e in self.errors)

    def as_dict(self) -> dict[str, Any]:
        first = self.errors[0] if self.errors else None
        return {
            "row": self.row,
            "id": self.id,
            "status": self.status,
            "field": first.field if first else None,
            "reason": first.reason if first else None,
            "errors": [e.as_dict() for e in self.errors],
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
        }


@dataclass(slots=True)
class Summary:
    """Counts over a list of outcomes."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_rows: list[RowOutcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicate + self.rejected


def summarise(outcomes: Iterable[RowOutcome]) -> Summary:
    out = Summary()
    for o in outcomes:
        if o.status == "accepted":
            out.accepted += 1
        elif o.status == "duplicate":
            out.duplicate += 1
        else:
            out.rejected += 1
            out.rejected_rows.append(o)
    return out


def _utc_now() -> datetime:
    return datetime.now(UTC)


def canonical_record(record: SamplingResult | PatrolReport, kind: RecordKind) -> tuple[str, str]:
    """The canonical JSON of a validated record (timestamps in UTC, fields in model order) and its SHA-256."""
    fields = dict(record.__dict__)
    for name in _TIME_FIELDS[kind]:
        value = fields.get(name)
        if value is not None and value.utcoffset():
            fields[name] = value.astimezone(UTC)
    payload = to_json(fields).decode("utf-8")
    return payload, hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _region_label(catalogue: Catalogue, code: str) -> str:
    region = catalogue.region(code)
    return f"{code} ({region.name_zh})" if region else code


def _resolve_names(data: Mapping[str, Any], catalogue: Catalogue) -> Mapping[str, Any]:
    region, industry = data.get("region"), data.get("industry")
    if isinstance(region, str) and catalogue.region(region) is None:
        code = catalogue.resolve_region(region)
        if code is not None:
            data = {**data, "region": code}
    if isinstance(industry, str) and catalogue.industry(industry) is None:
        slug = catalogue.resolve_industry(industry)
        if slug is not None:
            data = {**data, "industry": slug}
    return data


class Prepared(NamedTuple):
    """A valid row ready to store: its id, county, canonical JSON and hash (a tuple: cheap to pickle)."""

    row: int
    record_id: str
    region: str
    payload: str
    content_hash: str


class RowChunk(Protocol):
    """A picklable slice of an input that becomes rows where it is prepared (e.g. on a worker)."""

    def rows(self, catalogue: Catalogue) -> list[RawRow]: ...


@runtime_checkable
class ChunkedRows(Protocol):
    """An input that hands out :class:`RowChunk` slices (a parsed spreadsheet, see :mod:`.tabular`)."""

    def chunks(self, size: int) -> Iterator[RowChunk]: ...


def _validate(
    raw: RawRow, *, kind: RecordKind, context: dict[str, Any], catalogue: Catalogue, scope_region: str | None
) -> Prepared | RowOutcome:
    data = raw.data
    rid = data.get("id") if isinstance(data, Mapping) else None
    rid = (
        whole_characters(str(rid).strip())
        if isinstance(rid, str | int) and not isinstance(rid, bool)
        else None
    )
    if raw.errors:
        return RowOutcome(raw.row, rid, "rejected", raw.errors)
    if not isinstance(data, Mapping):
        reason = (
            f"must be a JSON object with the fields of a {_MODELS[kind].__name__}, got {type(data).__name__}"
        )
        return RowOutcome(raw.row, None, "rejected", (FieldError("", reason, "not_an_object"),))
    try:
        record = _MODELS[kind].model_validate(_resolve_names(data, catalogue), context=context)
    except ValidationError as exc:
        return RowOutcome(raw.row, rid, "rejected", tuple(field_errors(exc)))
    if scope_region is not None and record.region != scope_region:
        reason = (
            f"county {_region_label(catalogue, record.region)} is outside the submitter's scope "
            f"(county {_region_label(catalogue, scope_region)})"
        )
        return RowOutcome(raw.row, record.id, "rejected", (FieldError("region", reason, "out_of_scope"),))
    payload, digest = canonical_record(record, kind)
    return Prepared(raw.row, record.id, record.region, payload, digest)


def _conflict(row: int, rid: str, where: str, differing: str = "") -> RowOutcome:
    reason = (
        f"record '{rid}' was already {where} with different content{differing}; a new record needs a new id"
    )
    return RowOutcome(row, rid, "rejected", (FieldError("id", reason, "conflict"),))


def _differing(earlier: str | None, payload: str) -> str:
    """`` (a, b differ)``: the fields in which two canonical records differ, or ``""`` if not known."""
    try:
        old, new = json.loads(earlier or ""), json.loads(payload)
    except ValueError:
        return ""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""
    names = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    if not names:
        return ""
    return f" ({', '.join(names)} {'differs' if len(names) == 1 else 'differ'})"


def _chunks(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def prepare_rows(
    rows: list[RawRow], *, kind: RecordKind, catalogue: Catalogue, now: datetime, scope_region: str | None
) -> list[Prepared | RowOutcome]:
    """Validate ``rows`` against the catalogue and clock ``now``: a :class:`Prepared` or a rejection each."""
    context = validation_context(catalogue, now)
    return [
        _validate(raw, kind=kind, context=context, catalogue=catalogue, scope_region=scope_region)
        for raw in rows
    ]


Label = tuple[str, str]


def metric_labels(rows: list[RawRow], catalogue: Catalogue) -> list[Label]:
    """The (county, industry) metric labels of each row, as :func:`~.metrics.observe_rows` names them.

    Small enough to send back from a worker; repeated values are resolved once.
    """
    memo: dict[tuple[str | None, str | None], Label] = {}
    unknown = (metrics.UNKNOWN, metrics.UNKNOWN)
    out: list[Label] = []
    for raw in rows:
        data = raw.data
        if not isinstance(data, dict):
            out.append(unknown)
            continue
        region, industry = data.get("region"), data.get("industry")
        key = (region if isinstance(region, str) else None, industry if isinstance(industry, str) else None)
        label = memo.get(key)
        if label is None:
            view = {"region": key[0], "industry": key[1]}
            label = memo[key] = (metrics._county(view, catalogue), metrics._industry(view, catalogue))
        out.append(label)
    return out


def _observe(kind: RecordKind, labels: list[Label], outcomes: list[RowOutcome]) -> None:
    """Count outcomes by county, industry and status (what ``observe_rows`` counts, tallied first)."""
    tally = Counter(zip(labels, [o.status for o in outcomes], strict=True))
    for ((county, industry), status), n in tally.items():
        metrics.RECORDS.labels(kind.value, county, industry, status).inc(n)


def _store_prepared(
    session: Session,
    results: list[Prepared | RowOutcome],
    labels: list[Label],
    *,
    kind: RecordKind,
    catalogue: Catalogue,
    now: datetime,
    submitted_by: str | None,
) -> list[RowOutcome]:
    """Store one prepared chunk in its own transaction (retried if a concurrent writer wins an id)."""
    for attempt in range(3):
        try:
            with _write_lock(session):
                outcomes = _store_chunk(
                    session, results, kind=kind, catalogue=catalogue, now=now, submitted_by=submitted_by
                )
            break
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
    _observe(kind, labels, outcomes)
    return outcomes


def _write_lock(session: Session) -> AbstractContextManager[Any]:
    """SQLite has one writer: writers of this process queue on a lock instead of its busy-sleep."""
    bind = session.get_bind()
    engine = getattr(bind, "engine", bind)
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(engine)
        if lock is None:
            lock = _LOCKS[engine] = threading.Lock()
    return lock


def _store_chunk(
    session: Session,
    results: list[Prepared | RowOutcome],
    *,
    kind: RecordKind,
    catalogue: Catalogue,
    now: datetime,
    submitted_by: str | None,
) -> list[RowOutcome]:
    conn = session.connection()
    known = _lookup(conn, kind.value, list({r.record_id for r in results if isinstance(r, Prepared)}))
    texts = _rehash_differing(conn, known, results, kind=kind, catalogue=catalogue, now=now)
    outcomes: list[RowOutcome] = []
    fresh: list[tuple[Any, ...]] = []
    kind_value = kind.value
    for r in results:
        if isinstance(r, RowOutcome):
            outcomes.append(r)
            continue
        earlier = known.get(r.record_id)
        if earlier is None:
            known[r.record_id] = (r.content_hash, now)
            texts[r.record_id] = r.payload
            fresh.append((kind_value, r.record_id, r.region, r.payload, r.content_hash, submitted_by))
            outcomes.append(RowOutcome(r.row, r.record_id, "accepted", accepted_at=now))
        elif earlier[0] == r.content_hash or _same_but_width(texts.get(r.record_id), r.payload):
            outcomes.append(RowOutcome(r.row, r.record_id, "duplicate", accepted_at=earlier[1]))
        else:
            outcomes.append(
                _conflict(
                    r.row,
                    r.record_id,
                    f"accepted at {earlier[1].isoformat(timespec='seconds')}",
                    _differing(texts.get(r.record_id), r.payload),
                )
            )
    if fresh:
        _insert(conn, fresh, now)
    session.commit()
    return outcomes


def _rehash_differing(
    conn: Connection,
    known: dict[str, tuple[str, datetime]],
    results: list[Prepared | RowOutcome],
    *,
    kind: RecordKind,
    catalogue: Catalogue,
    now: datetime,
) -> dict[str, str]:
    """Give the stored records whose hash differs from a resubmission's the hash they have today.

    A record accepted before a normalisation rule existed (``""`` for an absent optional text, say)
    keeps the hash it was stored with; it is validated again from its stored payload and hashed as
    it would be now, so resubmitting it unchanged stays a duplicate. Rare (a real conflict or an old
    record): one query for those ids only. A payload that no longer validates keeps its hash.
    Returns those records' canonical JSON as of today (see :func:`_same_but_width`).
    """
    ids = {
        r.record_id
        for r in results
        if isinstance(r, Prepared) and r.record_id in known and known[r.record_id][0] != r.content_hash
    }
    texts: dict[str, str] = {}
    if not ids:
        return texts
    context = validation_context(catalogue, now)
    stored = conn.execute(
        select(_T.c.record_id, _T.c.payload).where(_T.c.kind == kind.value, _T.c.record_id.in_(ids))
    )
    for rid, payload in stored:
        texts[rid] = payload
        try:
            record = _MODELS[kind].model_validate_json(payload, context=context)
        except ValidationError:
            continue
        texts[rid], digest = canonical_record(record, kind)
        known[rid] = (digest, known[rid][1])
    return texts


def _same_but_width(earlier: str | None, payload: str) -> bool:
    """Whether two canonical records differ only in full-width and half-width forms (NFKC).

    A lab sheet's cells are read half-width, while a record pushed from the field keeps what was
    typed (``（分厂）``, ``ＩＮＳ－００７``): the same record reaching ingest both ways is a duplicate.
    """
    return earlier is not None and unicodedata.normalize("NFKC", earlier) == unicodedata.normalize(
        "NFKC", payload
    )


def _lookup(conn: Connection, kind_value: str, ids: list[str]) -> dict[str, tuple[str, datetime]]:
    """Hash and acceptance time of the ids already in the outbox, in driver SQL (no per-id compiling)."""
    dialect = conn.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    created = _T.c.created_at.type.dialect_impl(dialect).result_processor(dialect, None)
    known: dict[str, tuple[str, datetime]] = {}
    select = f"SELECT record_id, content_hash, created_at FROM {_T.name} WHERE kind = {mark} AND record_id"
    if dialect.name == "postgresql":
        # one array parameter, joined rather than ``= ANY``: an index or hash join, never ids x rows
        sql = (
            f"SELECT o.record_id, o.content_hash, o.created_at FROM unnest({mark}::text[]) AS u(id) "
            f"JOIN {_T.name} AS o ON o.record_id = u.id WHERE o.kind = {mark}"
        )
        batches: list[tuple[str, tuple[Any, ...]]] = [(sql, (ids, kind_value))] if ids else []
    else:
        batches = [
            (f"{select} IN ({', '.join([mark] * len(part))})", (kind_value, *part))
            for part in (ids[start : start + 500] for start in range(0, len(ids), 500))
        ]
    for sql, params in batches:
        for rid, digest, stamp in conn.exec_driver_sql(sql, params):
            known[rid] = (digest, created(stamp) if created is not None else stamp)  # type: ignore[assignment]
    return known


def _insert(conn: Connection, rows: list[tuple[Any, ...]], now: datetime) -> None:
    """Insert accepted rows: ``COPY`` for many rows on PostgreSQL (psycopg), else a driver ``executemany``.

    Both skip SQLAlchemy's per-row parameter handling, which costs more than the insert itself.
    """
    dialect = conn.dialect
    columns = "kind, record_id, region, payload, content_hash, submitted_by, outcome, created_at, attempts"
    if dialect.name == "postgresql" and dialect.driver == "psycopg" and len(rows) >= _COPY_FROM:
        raw: Any = conn.connection.driver_connection
        sql = f"COPY {_T.name} ({columns}) FROM STDIN"
        dbapi = dialect.loaded_dbapi
        try:
            with raw.cursor() as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row((*row, "accepted", now, 0))
        except dbapi.Error as exc:
            # the driver's own error, as SQLAlchemy would have wrapped it: an id that a concurrent
            # writer committed meanwhile is an IntegrityError, and the chunk is retried
            raise DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=dialect) from exc
        return
    created = _T.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = created(now) if created is not None else now
    marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * 9)
    conn.exec_driver_sql(
        f"INSERT INTO {_T.name} ({columns}) VALUES ({marks})", [(*row, "accepted", stamp, 0) for row in rows]
    )


@dataclass(frozen=True, slots=True)
class ListedRows:
    """A :class:`RowChunk` of rows that are already rows (a JSON batch)."""

    items: list[RawRow]

    def rows(self, catalogue: Catalogue) -> list[RawRow]:
        return self.items


def _row_chunks(rows: Iterable[RawRow] | ChunkedRows, size: int) -> Iterator[RowChunk]:
    if isinstance(rows, ChunkedRows):
        return rows.chunks(size)
    return (ListedRows(chunk) for chunk in _chunks(rows, size))


def submit_many(
    session: Session,
    *,
    kind: RecordKind | str,
    rows: Iterable[RawRow] | ChunkedRows,
    catalogue: Catalogue | None = None,
    clock: Clock = _utc_now,
    submitted_by: str | None = None,
    scope_region: str | None = None,
    on_chunk: Callable[[list[RowOutcome]], None] | None = None,
    workers: int = 0,
) -> list[RowOutcome]:
    """Validate and accept ``rows`` of one ``kind``; one outcome per row, in input order.

    ``rows`` are :class:`RawRow` or a :class:`ChunkedRows` (a parsed table, whose cells are then
    converted where the chunk is prepared). Rows are committed in chunks of :data:`CHUNK_ROWS`;
    ``on_chunk`` sees each chunk's outcomes after its commit (progress bars). ``scope_region`` (a
    county code) rejects rows of any other county. If another writer inserts the same id
    concurrently, the chunk is retried and the row becomes a duplicate or a conflict, never a second
    copy. With ``workers`` > 0 and more than one chunk, chunks are prepared on that many worker
    processes (:mod:`.pool`) while this process stores them in order; the outcomes are the same.
    """
    kind = RecordKind(kind)
    cat = catalogue or default_catalogue()
    chunks = _row_chunks(rows, CHUNK_ROWS)
    first = next(chunks, None)
    if first is None:
        return []
    second = next(chunks, None) if workers > 0 else None
    outcomes: list[RowOutcome] = []

    def store(results: list[Prepared | RowOutcome], labels: list[Label], now: datetime) -> None:
        done = _store_prepared(
            session, results, labels, kind=kind, catalogue=cat, now=now, submitted_by=submitted_by
        )
        outcomes.extend(done)
        if on_chunk is not None:
            on_chunk(done)

    if second is None:
        for chunk in _chain(first, chunks):
            now = clock()
            listed = chunk.rows(cat)
            prepared = prepare_rows(listed, kind=kind, catalogue=cat, now=now, scope_region=scope_region)
            store(prepared, metric_labels(listed, cat), now)
        return outcomes

    from .pool import shared_pool

    pool = shared_pool(cat, workers)
    for results, labels, now in pool.prepare(
        _chain(first, _chain(second, chunks)), kind=kind, clock=clock, scope_region=scope_region
    ):
        store(results, labels, now)
    return outcomes


def _chain(head: RowChunk, tail: Iterator[RowChunk]) -> Iterator[RowChunk]:
    yield head
    yield from tail


def submit_one(
    session: Session,
    *,
    kind: RecordKind | str,
    data: Any,
    catalogue: Catalogue | None = None,
    clock: Clock = _utc_now,
    submitted_by: str | None = None,
    scope_region: str | None = None,
) -> RowOutcome:
    """Validate and accept one record (see :func:`submit_many`); its outcome, row 1."""
    return submit_many(
        session,
        kind=kind,
        rows=[RawRow(1, data)],
        catalogue=catalogue,
        clock=clock,
        submitted_by=submitted_by,
        scope_region=scope_region,
    )[0]
