"""One exception root for the alert service; ``alerts.api`` maps each class to one HTTP status.

Every error names the field (or the thing) and the reason, so an API client never sees a bare 500.
"""

from __future__ import annotations

from typing import Any

from schemas import QualityWatchError
from schemas.settings import SettingsError as _SettingsError

__all__ = [
    "AlertServiceError",
    "Conflict",
    "Forbidden",
    "IllegalTransition",
    "InvalidInput",
    "NotFound",
    "SettingsError",
    "Unauthorized",
]


class AlertServiceError(QualityWatchError):
    """Root of the alert service's deliberate errors."""

    status_code = 400
    code = "alert_service_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``error``; a 422 also lists its problem in ``errors``, as a request that
        fails validation does (``[{"field", "reason", "type"}]``), so a client reads every 422 alike."""
        body: dict[str, Any] = {"error": self.as_dict()}
        if self.status_code == 422:
            body["errors"] = [{"field": self.field, "reason": self.message, "type": self.code}]
        return body


class InvalidInput(AlertServiceError):
    """A request body or parameter is well-formed JSON but not acceptable (names the field)."""

    status_code = 422
    code = "invalid"


class NotFound(AlertServiceError):
    status_code = 404
    code = "not_found"


class Conflict(AlertServiceError):
    status_code = 409
    code = "conflict"


class IllegalTransition(Conflict):
    """A state machine (alert, incident) refused a move from its current state."""

    code = "illegal_transition"


class Unauthorized(AlertServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AlertServiceError):
    status_code = 403
    code = "forbidden"


class SettingsError(AlertServiceError, _SettingsError):
    """The service's settings cannot be used (names each ``QW_*`` variable and the reason); raised at
    start-up, before anything is served. A :class:`schemas.settings.SettingsError`, as the stream's."""

    status_code = 500
    code = "settings"
