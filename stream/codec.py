"""Bytes on the wire <-> records: decoding with validation, cell-weeks, warnings, dead letters.

Decoding never raises on bad input: it returns a :class:`Rejection` that says why, which the worker
sends to the dead-letter topic (the poison-message policy in ``docs/stream.md``).
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from detectors.base import CellWeek
from schemas import Catalogue, RiskWarning, SamplingResult, field_errors, validation_context
from schemas.fastpath import SamplingDecoder, SamplingRecord
from schemas.weeks import week_end, week_start

__all__ = [
    "DEAD_LETTER_MAX_ORIGINAL",
    "Rejection",
    "check_cell_week",
    "dead_letter",
    "decode_cell_week",
    "decode_record",
    "encode_cell_week",
    "encode_warning",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejection:
    """Why an input message was refused (``reason`` names the field when there is one)."""

    reason: str
    errors: tuple[dict[str, str], ...] = ()


def decode_record(
    raw: bytes | None, model: type[M], catalogue: Catalogue, now: datetime | None = None
) -> M | SamplingRecord | Rejection:
    """Decode UTF-8 JSON bytes into ``model`` validated against ``catalogue``.

    Sampling results come back as :class:`~schemas.fastpath.SamplingRecord`, decoded by the same
    :class:`~schemas.fastpath.SamplingDecoder` a replay uses (so stream and replay hand the engine
    the same records); patrol reports as ``model``. ``now`` is the validating clock (default: the
    wall clock, UTC).
    """
    if raw is None:
        return Rejection("empty message (no value)")
    if model is SamplingResult:
        try:
            return _sampling_decoder(catalogue)(raw, now or datetime.now(UTC))
        except ValidationError:
            pass  # refused: the general path below says why, in the dead-letter's words
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(f"not UTF-8: {exc.reason} at byte {exc.start}")
    data = _parse_json(text)
    if isinstance(data, Rejection):
        return data
    if not isinstance(data, dict):
        return Rejection(f"invalid record: expected a JSON object, got {type(data).__name__}")
    try:
        valid = model.model_validate(data, context=validation_context(catalogue, now))
    except ValidationError as exc:
        errs = field_errors(exc)
        return Rejection(
            "invalid record: " + "; ".join(str(e) for e in errs),
            tuple(e.as_dict() for e in errs),
        )
    if isinstance(valid, SamplingResult):  # valid as a Python object though not as JSON text
        return SamplingRecord.from_model(valid)
    return valid


def _parse_json(text: str | bytes) -> Any:
    """The JSON value of ``text``, or a :class:`Rejection` naming what the parser gave up on."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except UnicodeDecodeError as exc:
        return Rejection(f"not UTF-8: {exc.reason} at byte {exc.start}")
    except RecursionError:
        return Rejection("invalid JSON: nested too deeply")
    except ValueError:  # the only other one: an integer longer than Python converts
        return Rejection(f"invalid JSON: a number of more than {sys.get_int_max_str_digits()} digits")


@lru_cache(maxsize=8)
def _sampling_decoder(catalogue: Catalogue) -> SamplingDecoder:
    return SamplingDecoder(catalogue, now=datetime.now(UTC))


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def encode_cell_week(cell: CellWeek) -> bytes:
    return json.dumps(
        {
            "region": cell.region,
            "industry": cell.industry,
            "week_start": _dt(cell.week_start),
            "week_end": _dt(cell.week_end),
            "tested": cell.tested,
            "failed": cell.failed,
            "failed_ids": list(cell.failed_ids),
            "item_failures": [[item, list(ids)] for item, ids in cell.item_failures],
            "last_event": _dt(cell.last_event),
        },
        separators=(",", ":"),
    ).encode("utf-8")


def decode_cell_week(raw: bytes | None, zone: tzinfo) -> CellWeek | Rejection:
    """A cell-week from its JSON (datetimes back in the catalogue's zone)."""
    if raw is None:
        return Rejection("empty message (no value)")
    d = _parse_json(raw)
    if isinstance(d, Rejection):
        return d
    try:

        def when(key: str) -> datetime | None:
            v = d.get(key)
            if v is None:
                return None
            t = datetime.fromisoformat(v)
            if t.tzinfo is None:
                raise ValueError(f"{key}: must carry a UTC offset")
            return t.astimezone(zone)

        start, end = when("week_start"), when("week_end")
        if start is None or end is None:
            raise ValueError("week_start/week_end: are required")
        return CellWeek(
            region=str(d["region"]),
            industry=str(d["industry"]),
            week_start=start,
            week_end=end,
            tested=int(d["tested"]),
            failed=int(d["failed"]),
            failed_ids=tuple(str(i) for i in d.get("failed_ids", ())),
            item_failures=tuple((str(k), tuple(str(i) for i in v)) for k, v in d.get("item_failures", ())),
            last_event=when("last_event"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Rejection(f"invalid cell-week: {exc!r}")


def check_cell_week(cell: CellWeek, catalogue: Catalogue, epoch: datetime, now: datetime) -> Rejection | None:
    """Why a well-formed cell-week cannot be one a worker closed (None when it can be).

    The industry and systemic barriers trust every cell they take: a cell of an unknown county or
    industry, with impossible counts, or of a week that is not a catalogue week since ``epoch`` or
    has not begun by ``now`` would be counted, or would stay pending for ever as the "later week"
    that releases every earlier week without the counties not yet in.
    """
    zone = catalogue.zone
    if cell.region not in catalogue.region_codes:
        return Rejection(f"invalid cell-week: region {cell.region!r} is not a county of the catalogue")
    if cell.industry not in catalogue.industry_slugs:
        return Rejection(f"invalid cell-week: industry {cell.industry!r} is not an industry of the catalogue")
    if not 0 <= cell.failed <= cell.tested:
        return Rejection(f"invalid cell-week: failed {cell.failed} and tested {cell.tested} are impossible")
    start = cell.week_start
    if start != week_start(start, zone) or cell.week_end != week_end(start, zone):
        return Rejection(
            f"invalid cell-week: {start.isoformat()} to {cell.week_end.isoformat()} is not a week "
            "(Monday 00:00 to the next Monday 00:00 in the catalogue's time zone)"
        )
    if start < epoch or start > now:
        return Rejection(
            f"invalid cell-week: week of {start.isoformat()} is before the epoch {epoch.isoformat()} "
            f"or after the worker's clock {now.isoformat()}"
        )
    return None


def encode_warning(warning: RiskWarning) -> bytes:
    return warning.model_dump_json().encode("utf-8")


#: the most of a refused message's key and of its value a dead letter carries (each): a dead letter
#: must fit in one produce request (1 MiB by default) however large the message it refuses, or the
#: worker could not send it and would stop on that message at every restart
DEAD_LETTER_MAX_ORIGINAL = 192 * 1024
#: the longest reason, and the most field errors (each field and reason cut to 500 characters), it
#: carries; when the errors would still make it longer than :data:`DEAD_LETTER_MAX_BYTES` they are
#: left out (the reason lists them too)
DEAD_LETTER_MAX_REASON = 4096
DEAD_LETTER_MAX_ERRORS = 100
DEAD_LETTER_MAX_BYTES = 768 * 1024


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _original(doc: dict[str, Any], name: str, raw: bytes | None) -> None:
    """``<name>_b64`` of ``raw`` (at most :data:`DEAD_LETTER_MAX_ORIGINAL` bytes of it) and its size."""
    doc[f"{name}_b64"] = (
        base64.b64encode(raw[:DEAD_LETTER_MAX_ORIGINAL]).decode("ascii") if raw is not None else None
    )
    if raw is not None and len(raw) > DEAD_LETTER_MAX_ORIGINAL:
        doc[f"{name}_truncated"] = True
        doc[f"{name}_size"] = len(raw)


def dead_letter(
    *,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    errors: tuple[dict[str, str], ...] = (),
    at: datetime | None = None,
) -> bytes:
    """The dead-letter message: where the input came from, why it was refused, its original bytes.

    The original key and value are cut to :data:`DEAD_LETTER_MAX_ORIGINAL` bytes each (then
    ``key_truncated`` / ``value_truncated`` is true and ``key_size`` / ``value_size`` give the
    original length), the reason and the field errors to a few kilobytes, so that the dead letter of
    the largest message the broker accepts can still be sent.
    """
    errs = [{k: _cut(str(v), 500) for k, v in e.items()} for e in errors[:DEAD_LETTER_MAX_ERRORS]]
    doc: dict[str, Any] = {
        "reason": _cut(reason, DEAD_LETTER_MAX_REASON),
        "errors": errs,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }
    if len(errors) > DEAD_LETTER_MAX_ERRORS:
        doc["errors_omitted"] = len(errors) - DEAD_LETTER_MAX_ERRORS
    _original(doc, "key", key)
    _original(doc, "value", value)
    doc["refused_at"] = (at or datetime.now(UTC)).isoformat()
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    if len(body) > DEAD_LETTER_MAX_BYTES and errs:
        doc["errors"], doc["errors_omitted"] = [], len(errors)
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return body
