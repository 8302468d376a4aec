"""PLACEHOLDER (being written): enterprise repeat failures and unusual results (IsolationForest)."""

from __future__ import annotations

from typing import Any

from schemas import RiskWarning, SamplingResult

from .base import Detector, Score


class EnterpriseRepeatDetector(Detector[SamplingResult]):
    name = "enterprise_repeat"

    def __init__(self, *, enterprise_id: str, region_label: str, **hyper: Any) -> None:
        self.enterprise_id = enterprise_id

    def score(self, obs: SamplingResult) -> Score:
        return Score(0.0, 1.0)

    def learn(self, obs: SamplingResult) -> None:
        pass

    def step(self, obs: SamplingResult) -> list[RiskWarning]:
        return []


class EnterpriseOutlierDetector(Detector[SamplingResult]):
    name = "enterprise_outlier"

    def __init__(self, *, region: str, industry: str, items: tuple[str, ...], seed: int, **hyper: Any) -> None:
        self.region, self.industry = region, industry

    def score(self, obs: SamplingResult) -> Score:
        return Score(0.0, 1.0)

    def learn(self, obs: SamplingResult) -> None:
        pass

    def step(self, obs: SamplingResult) -> list[RiskWarning]:
        return []
