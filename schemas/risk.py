"""What a detector emits: :class:`RiskWarning`, with its scope, four-colour level and evidence.

``fingerprint`` is stable for detector + kind + scope (the alert service dedups on it); ``id`` is
unique per emission and deterministic (fingerprint, status and window), so a replay and the live
stream emit the same ids for the same warnings and a redelivery is harmless.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "Evidence",
    "Level",
    "RiskWarning",
    "Scope",
    "WarningKind",
    "WarningStatus",
    "fingerprint_of",
    "warning_id",
]


class WarningKind(StrEnum):
    regional = "regional"  # a county
    industry = "industry"  # an industry across the prefecture
    systemic = "systemic"  # one hazard spreading across regions and industries
    enterprise = "enterprise"  # one enterprise
    site = "site"  # a patrol finding


class Level(StrEnum):
    """The national four-colour warning scale: blue (IV) < yellow (III) < orange (II) < red (I)."""

    blue = "blue"
    yellow = "yellow"
    orange = "orange"
    red = "red"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def roman(self) -> str:
        return ("IV", "III", "II", "I")[_RANK[self]]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return _RANK[self] < _RANK[other]

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return _RANK[self] <= _RANK[other]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return _RANK[self] > _RANK[other]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return _RANK[self] >= _RANK[other]


_RANK = {Level.blue: 0, Level.yellow: 1, Level.orange: 2, Level.red: 3}


class WarningStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


class Scope(BaseModel):
    """What the warning is about; fields that do not apply are null."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str | None = None
    industry: str | None = None
    item: str | None = None
    enterprise_id: str | None = None


class Evidence(BaseModel):
    """The numbers behind a warning: enough to plot and audit it without reading code.

    Detector-specific figures (baseline length, dispersion, upper bound, CUSUM value …) go in as
    extra fields and are kept.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    tested: int = Field(ge=0)
    failed: int = Field(ge=0)
    observed_rate: float
    expected_rate: float | None = None
    statistic: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    record_ids: list[str] = Field(default_factory=list)


class RiskWarning(BaseModel):
    """One emission of a detector (one JSON object on ``qw.warnings``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    fingerprint: str
    kind: WarningKind
    level: Level
    status: WarningStatus = WarningStatus.firing
    scope: Scope
    detector: str
    raised_at: AwareDatetime
    window_start: AwareDatetime
    window_end: AwareDatetime
    evidence: Evidence
    summary: str

    def key(self) -> tuple[str, str, str, str]:
        """What parity between replay and stream compares: fingerprint, status, level, window."""
        return (self.fingerprint, self.status.value, self.level.value, self.window_end.isoformat())


def fingerprint_of(detector: str, kind: WarningKind | str, scope: Scope | dict[str, Any]) -> str:
    """Stable identity of what a warning is about (detector + kind + scope), 20 hex characters."""
    s = scope if isinstance(scope, Scope) else Scope(**scope)
    return _fingerprint(
        detector, str(kind), s.region or "", s.industry or "", s.item or "", s.enterprise_id or ""
    )


@lru_cache(maxsize=16_384)
def _fingerprint(*parts: str) -> str:
    """The hash behind :func:`fingerprint_of`, remembered: a scope that fires usually resolves too."""
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:20]


def warning_id(
    fingerprint: str, status: WarningStatus | str, window_end: datetime, raised_at: datetime
) -> str:
    """Deterministic id of one emission."""
    end = window_end.astimezone(UTC).isoformat()
    # a record's own warning ends its window where it is raised: the same instant, the same text
    raised = end if raised_at == window_end else raised_at.astimezone(UTC).isoformat()
    raw = f"{fingerprint}|{status}|{end}|{raised}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]
