"""PLACEHOLDER (being written): one hazard item above baseline in >= 2 counties and >= 2 industries."""

from __future__ import annotations

from typing import Any

from schemas import RiskWarning

from .base import Detector, ItemWeek, Score


class SystemicItemDetector(Detector[ItemWeek]):
    name = "systemic_item"

    def __init__(self, *, item: str, label: str, region_labels: dict[str, str], industry_labels: dict[str, str],
                 **hyper: Any) -> None:
        self.item, self.label = item, label

    def score(self, obs: ItemWeek) -> Score:
        return Score(0.0, 1.0)

    def learn(self, obs: ItemWeek) -> None:
        pass

    def step(self, obs: ItemWeek) -> list[RiskWarning]:
        return []
