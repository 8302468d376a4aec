"""The exceptions ingest raises on purpose, each with the HTTP status it maps to.

One root (:class:`IngestError`) under the vocabulary's :class:`schemas.QualityWatchError`; the API
turns them into responses in one place (``stream.ingest.api``), with a body that names the error,
the field when there is one, and the reason.
"""

from __future__ import annotations

from typing import Any

from schemas import FieldError, QualityWatchError

__all__ = [
    "BadPayload",
    "Conflict",
    "Forbidden",
    "IngestError",
    "InvalidRequest",
    "PayloadTooLarge",
    "Rejected",
    "Unauthenticated",
]


class IngestError(QualityWatchError):
    """Root of ingest's errors; ``status`` is the HTTP status, ``code`` a stable machine name."""

    status = 400
    code = "ingest_error"

    def __init__(
        self, message: str, errors: list[FieldError] | tuple[FieldError, ...] = (), **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": self.message,
            "errors": [e.as_dict() for e in self.errors],
            **self.extra,
        }


class BadPayload(IngestError):
    """The body or file cannot be read at all (not JSON, not a spreadsheet, no header row)."""

    status = 400
    code = "bad_payload"


class Unauthenticated(IngestError):
    status = 401
    code = "unauthenticated"


class Forbidden(IngestError):
    status = 403
    code = "forbidden"


class Conflict(IngestError):
    """A record id was accepted before with different content."""

    status = 409
    code = "conflict"


class PayloadTooLarge(IngestError):
    status = 413
    code = "payload_too_large"


class Rejected(IngestError):
    """The record is invalid; ``errors`` name each field and why."""

    status = 422
    code = "rejected"


class InvalidRequest(IngestError):
    """The request itself is malformed (an unknown query value, a missing form field)."""

    status = 422
    code = "invalid_request"
