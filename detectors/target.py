"""PLACEHOLDER (being written): pass rate significantly below the policy target."""

from __future__ import annotations

from typing import Any

from schemas import RiskWarning, Scope, WarningKind

from .base import Detector, Score, SeriesWeek


class PolicyTargetDetector(Detector[SeriesWeek]):
    name = "policy_target"

    def __init__(self, *, kind: WarningKind, scope: Scope, label: str, **hyper: Any) -> None:
        self.kind, self.scope, self.label = kind, scope, label

    def score(self, obs: SeriesWeek) -> Score:
        return Score(0.0, 1.0)

    def learn(self, obs: SeriesWeek) -> None:
        pass

    def step(self, obs: SeriesWeek) -> list[RiskWarning]:
        return []
