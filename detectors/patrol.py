"""PLACEHOLDER (being written): patrol findings (major at once; repeated or clustered general hazards)."""

from __future__ import annotations

from typing import Any

from schemas import PatrolReport, RiskWarning

from .base import Detector, Score


class PatrolDetector(Detector[PatrolReport]):
    name = "patrol"

    def __init__(self, *, region: str, label: str, **hyper: Any) -> None:
        self.region, self.label = region, label

    def score(self, obs: PatrolReport) -> Score:
        return Score(0.0, 1.0)

    def learn(self, obs: PatrolReport) -> None:
        pass

    def step(self, obs: PatrolReport) -> list[RiskWarning]:
        return []
