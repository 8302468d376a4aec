"""Seed data of the dashboard's browser tests: twelve weeks of county × industry cell statistics
(three cells turn bad in the last weeks) and warnings whose evidence sums those cells."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from schemas import (
    Evidence,
    Level,
    RiskWarning,
    Scope,
    WarningKind,
    WarningStatus,
    default_catalogue,
    fingerprint_of,
    warning_id,
)

__all__ = ["AKQI", "AKTO", "ARTUX", "LATEST", "WEEKS", "WUQIA", "Service", "cell_weeks", "make_warning"]

ZONE = ZoneInfo("Asia/Shanghai")
#: start of the latest closed week in the seeded history (a Monday, local time)
LATEST = datetime(2026, 2, 23, tzinfo=ZONE)
WEEKS = 12

ARTUX, AKTO, AKQI, WUQIA = "653001", "653022", "653023", "653024"
#: cells whose failures rise over the last weeks (what the seeded warnings are about)
HOT = {(ARTUX, "food_processing"): 0.55, (AKTO, "textiles"): 0.40, (WUQIA, "building_materials"): 0.35}


def week_start(k: int) -> datetime:
    """Start of week ``k`` (0 = oldest, ``WEEKS - 1`` = latest)."""
    return LATEST - timedelta(weeks=WEEKS - 1 - k)


def cell_weeks() -> list[dict[str, Any]]:
    """Deterministic weekly figures of every county × industry cell."""
    cat = default_catalogue()
    rng = random.Random(20260223)
    out = []
    for k in range(WEEKS):
        for region in cat.region_codes:
            for ind in cat.industries:
                tested = rng.randint(18, 34)
                base = 0.02 if ind.category == "food_agri" else 0.05
                hot = HOT.get((region, ind.slug))
                rate = hot if hot is not None and k >= WEEKS - 3 else base
                failed = min(tested, sum(rng.random() < rate for _ in range(tested)))
                items = list(ind.hazard_items)
                out.append(
                    {
                        "region": region,
                        "industry": ind.slug,
                        "week_start": week_start(k).isoformat(),
                        "week_end": (week_start(k) + timedelta(weeks=1)).isoformat(),
                        "tested": tested,
                        "failed": failed,
                        "item_failures": {items[0]: failed} if failed else {},
                    }
                )
    return out


def make_warning(
    cells: list[dict[str, Any]],
    *,
    k: int,
    level: str,
    region: str | None = None,
    industry: str | None = None,
    detector: str = "regional_rate",
    expected: float = 0.04,
) -> RiskWarning:
    """A warning about week ``k`` whose evidence sums the seeded cells of its scope."""
    kind = WarningKind.regional if region else WarningKind.industry
    scope = Scope(region=region, industry=None if region else industry)
    start = week_start(k)
    mine = [
        c
        for c in cells
        if c["week_start"] == start.isoformat()
        and (region is None or c["region"] == region)
        and (industry is None or c["industry"] == industry)
    ]
    tested = sum(c["tested"] for c in mine)
    failed = sum(c["failed"] for c in mine)
    end = start + timedelta(weeks=1)
    raised = end - timedelta(hours=3)
    fp = fingerprint_of(detector, kind, scope)
    cat = default_catalogue()
    label = cat.region(region).name_zh if region else cat.industry(industry or "").name_zh  # type: ignore[union-attr]
    observed = failed / tested
    return RiskWarning(
        id=warning_id(fp, WarningStatus.firing, end, raised),
        fingerprint=fp,
        kind=kind,
        level=Level(level),
        status=WarningStatus.firing,
        scope=scope,
        detector=detector,
        raised_at=raised,
        window_start=start,
        window_end=end,
        evidence=Evidence(
            tested=tested,
            failed=failed,
            observed_rate=observed,
            expected_rate=expected,
            statistic=round(observed / expected, 2),
            threshold=2.0,
            p_value=0.0004,
            record_ids=[f"S-{region or industry}-{k}-{i}" for i in range(min(failed, 5))],
        ),
        summary=(
            f"{label}：本周 {tested} 批次中 {failed} 批不合格（{100 * observed:.1f} %），"
            f"预期 {100 * expected:.1f} % [{level}]"
        ),
    )


@dataclass
class Service:
    """The running alert service and what the tests need to talk to it."""

    url: str
    tokens: dict[str, str]
    cells: list[dict[str, Any]]
    client: httpx.Client
    alert_ids: dict[str, int] = field(default_factory=dict)

    def push(self, warning: RiskWarning) -> dict[str, Any]:
        """Feed a warning into the service's pipeline (as the topic consumer would)."""
        r = self.client.post(
            "/api/warnings",
            content=warning.model_dump_json(),
            headers={"Authorization": f"Bearer {self.tokens['admin']}", "Content-Type": "application/json"},
        )
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out

    def get(self, path: str, token: str = "admin") -> Any:
        r = self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[token]}"})
        r.raise_for_status()
        return r.json()
