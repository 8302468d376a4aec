"""One exception root for the vocabulary, and field-level error descriptions.

Every layer (ingest, replay, the stream's dead-letter policy) reports bad input the same way: a list
of :class:`FieldError` naming the field (dotted path, list indexes included) and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

__all__ = ["FieldError", "QualityWatchError", "RecordError", "field_errors", "whole_characters"]


class QualityWatchError(Exception):
    """Root of the exceptions QualityWatch raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str
    type: str = "invalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "type": self.type}


class RecordError(QualityWatchError):
    """A record was refused; ``errors`` names each field and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


_READABLE = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this record",
    "timezone_aware": "must carry a UTC offset (ISO 8601, e.g. 2026-03-01T10:00:00+08:00)",
    "string_unicode": "holds half of a UTF-16 surrogate pair (an escape such as \\ud800 alone), not text",
}

_SURROGATE = re.compile("[\ud800-\udfff]")


def whole_characters(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate (JSON ``"\\ud800"``) replaced by U+FFFD.

    JSON lets a string escape half of a surrogate pair; such a string cannot be written as UTF-8, so
    an answer that echoes it (an id, a field name) could not be sent at all.
    """
    return _SURROGATE.sub("\ufffd", text)


#: what a field of the wrong JSON type should have been (the reason then shows what came instead)
_EXPECTED = {
    "bool_type": "true or false",
    "float_type": "a number",
    "int_type": "a whole number",
    "string_type": "text",
}


def _shown(value: object) -> str:
    """A value as a person would recognise it in their input: ``the string 'true'``, ``the number 1``."""
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return f"the number {value:g}" if isinstance(value, float) else f"the number {value}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Flatten a pydantic ``ValidationError`` into field/reason pairs a person can read."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        field = whole_characters(".".join(str(part) for part in err["loc"]))
        kind = str(err["type"])
        reason = _READABLE.get(kind, str(err["msg"]))
        if kind in _EXPECTED:
            reason = f"must be {_EXPECTED[kind]}, not {_shown(err.get('input'))}"
        if kind.startswith("value_error") and reason.startswith("Value error, "):
            reason = reason[len("Value error, ") :]
        out.append(FieldError(field=field, reason=whole_characters(reason), type=kind))
    return out
