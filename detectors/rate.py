"""PLACEHOLDER (being written): rate-aware change detection for a county or an industry."""

from __future__ import annotations

from typing import Any

from schemas import RiskWarning, Scope, WarningKind

from .base import Detector, Score, SeriesWeek


class RateChangeDetector(Detector[SeriesWeek]):
    name = "rate"

    def __init__(self, *, name: str, kind: WarningKind, scope: Scope, label: str, **hyper: Any) -> None:
        self.name = name  # type: ignore[misc]
        self.kind, self.scope, self.label = kind, scope, label

    def score(self, obs: SeriesWeek) -> Score:
        return Score(0.0, 1.0)

    def learn(self, obs: SeriesWeek) -> None:
        pass

    def step(self, obs: SeriesWeek) -> list[RiskWarning]:
        return []
