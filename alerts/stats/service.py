"""Service functions of the statistics domain: record cell-weeks, and read the grid, a series and
pass-rate tables against the policy targets.

Keyword-only over a session; the caller commits. Figures come from ``cell_stats`` (the stream's
weekly county × industry summaries); warning levels and the points that fired come from the alerts
and the evidence of their received warnings. A county-scoped principal sees its county only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import Catalogue, Level

from ..alert.models import Alert, AlertState, ReceivedWarning
from ..auth.service import Principal
from ..errors import Forbidden, InvalidInput
from .models import CellStat

__all__ = [
    "BASELINE_WEEKS",
    "CellWeekIn",
    "Period",
    "grid",
    "pass_rates",
    "record_cell_weeks",
    "series",
]

#: weeks of trailing history that make the expected rate of a week without a detector's figure
BASELINE_WEEKS = 8

Period = Literal["week", "month", "quarter", "year"]


@dataclass(frozen=True, slots=True)
class CellWeekIn:
    """One closed week of one cell, as the stream's ``cell-weeks`` topic carries it."""

    region: str
    industry: str
    week_start: datetime
    week_end: datetime
    tested: int
    failed: int
    item_failures: dict[str, int] = field(default_factory=dict)


def _rank(level: str | None) -> int:
    return Level(level).rank if level else -1


def _allowed_regions(catalogue: Catalogue, principal: Principal, region: str | None) -> list[str]:
    if region is not None and catalogue.region(region) is None:
        raise InvalidInput(f"unknown county code {region!r}", field="county")
    if principal.county is not None:
        if region is not None and region != principal.county:
            raise Forbidden(
                f"county {region} is outside the token's scope (county {principal.county})", field="county"
            )
        return [principal.county]
    return [region] if region is not None else list(catalogue.region_codes)


def record_cell_weeks(
    session: Session, *, catalogue: Catalogue, cells: Sequence[CellWeekIn], now: datetime
) -> int:
    """Upsert cell-weeks keyed by (county, industry, week); returns how many were written."""
    for i, c in enumerate(cells):
        where = f"cells[{i}]"
        if catalogue.region(c.region) is None:
            raise InvalidInput(f"unknown county code {c.region!r}", field=f"{where}.region")
        if catalogue.industry(c.industry) is None:
            raise InvalidInput(f"unknown industry {c.industry!r}", field=f"{where}.industry")
        if not 0 <= c.failed <= c.tested:
            raise InvalidInput(
                f"failed ({c.failed}) must be within 0..tested ({c.tested})", field=f"{where}.failed"
            )
        if c.week_end <= c.week_start:
            raise InvalidInput("must be after week_start", field=f"{where}.week_end")
    for c in cells:
        row = session.scalar(
            select(CellStat).where(
                CellStat.region == c.region,
                CellStat.industry == c.industry,
                CellStat.week_start == c.week_start,
            )
        )
        if row is None:
            row = CellStat(region=c.region, industry=c.industry, week_start=c.week_start)
            session.add(row)
        row.week_end = c.week_end
        row.tested = c.tested
        row.failed = c.failed
        row.item_failures = dict(c.item_failures)
        row.updated_at = now
    session.flush()
    return len(cells)


def _open_alerts(session: Session, regions: Iterable[str]) -> list[Alert]:
    q = select(Alert).where(Alert.state != AlertState.resolved.value)
    q = q.where(Alert.region.in_(list(regions)) | Alert.region.is_(None))
    return list(session.scalars(q))


def _cell_level(alerts: Iterable[Alert], region: str, industry: str) -> tuple[str | None, list[int]]:
    """Highest open level touching a cell: the county's, the industry's, or the cell's own alerts."""
    best: str | None = None
    ids: list[int] = []
    for a in alerts:
        if a.region not in (region, None) or a.industry not in (industry, None):
            continue
        if a.region is None and a.industry is None:  # systemic: only the cells its evidence names
            cells = a.evidence.get("cells") or []
            if not any(c.get("region") == region and c.get("industry") == industry for c in cells):
                continue
        ids.append(a.id)
        if _rank(a.level) > _rank(best):
            best = a.level
    return best, ids


def grid(session: Session, *, catalogue: Catalogue, principal: Principal, weeks: int = 4) -> dict[str, Any]:
    """County × industry: pass rate over the last ``weeks`` weeks against the target, highest open level."""
    regions = _allowed_regions(catalogue, principal, None)
    latest = session.scalar(select(CellStat.week_start).order_by(CellStat.week_start.desc()).limit(1))
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    since = None
    if latest is not None:
        since = latest - timedelta(weeks=weeks - 1)
        rows = session.scalars(
            select(CellStat).where(CellStat.week_start >= since, CellStat.region.in_(regions))
        )
        for r in rows:
            totals[(r.region, r.industry)][0] += r.tested
            totals[(r.region, r.industry)][1] += r.failed
    alerts = _open_alerts(session, regions)
    cells = []
    for region in regions:
        for ind in catalogue.industries:
            tested, failed = totals.get((region, ind.slug), (0, 0))
            level, ids = _cell_level(alerts, region, ind.slug)
            target = catalogue.target_for_industry(ind.slug)
            rate = (tested - failed) / tested if tested else None
            cells.append(
                {
                    "county": region,
                    "industry": ind.slug,
                    "tested": tested,
                    "failed": failed,
                    "pass_rate": rate,
                    "target": target,
                    "below_target": rate is not None and rate < target,
                    "level": level,
                    "alert_ids": ids,
                }
            )
    county_levels: dict[str, str] = {}
    industry_levels: dict[str, str] = {}
    for a in alerts:
        if (
            a.region is not None
            and a.industry is None
            and _rank(a.level) > _rank(county_levels.get(a.region))
        ):
            county_levels[a.region] = a.level
        if (
            a.region is None
            and a.industry is not None
            and _rank(a.level) > _rank(industry_levels.get(a.industry))
        ):
            industry_levels[a.industry] = a.level
    return {
        "weeks": weeks,
        "county_levels": county_levels,
        "industry_levels": industry_levels,
        "since": since.isoformat() if since else None,
        "until": (latest + timedelta(weeks=1)).isoformat() if latest else None,
        "counties": regions,
        "industries": list(catalogue.industry_slugs),
        "cells": cells,
    }


def _alerts_of_series(
    session: Session, *, region: str | None, industry: str | None, item: str | None, regions: list[str]
) -> list[Alert]:
    q = select(Alert).where(
        Alert.region.is_(None) if region is None else Alert.region == region,
        Alert.industry.is_(None) if industry is None else Alert.industry == industry,
        Alert.item.is_(None) if item is None else Alert.item == item,
    )
    if region is None:
        q = q.where(Alert.region.is_(None) | Alert.region.in_(regions))
    return list(session.scalars(q))


def series(
    session: Session,
    *,
    catalogue: Catalogue,
    principal: Principal,
    region: str | None,
    industry: str | None,
    item: str | None,
) -> dict[str, Any]:
    """Weekly tested/failed of one series with its expected band, and the warnings that fired on it."""
    if industry is not None and catalogue.industry(industry) is None:
        raise InvalidInput(f"unknown industry {industry!r}", field="industry")
    if region is None and industry is None and item is None:
        raise InvalidInput("name a county, an industry or a hazard item", field="county")
    regions = _allowed_regions(catalogue, principal, region)
    q = select(CellStat).where(CellStat.region.in_(regions)).order_by(CellStat.week_start)
    if industry is not None:
        q = q.where(CellStat.industry == industry)
    weeks: dict[datetime, dict[str, Any]] = {}
    for r in session.scalars(q):
        w = weeks.setdefault(
            r.week_start, {"week_start": r.week_start, "week_end": r.week_end, "tested": 0, "failed": 0}
        )
        w["tested"] += r.tested
        w["failed"] += int(r.item_failures.get(item, 0)) if item is not None else r.failed
    fired: list[dict[str, Any]] = []
    alerts = _alerts_of_series(session, region=region, industry=industry, item=item, regions=regions)
    by_alert = {a.id: a for a in alerts}
    expected_at: dict[datetime, float] = {}
    if by_alert:
        for rw in session.scalars(
            select(ReceivedWarning)
            .where(ReceivedWarning.alert_id.in_(list(by_alert)))
            .order_by(ReceivedWarning.raised_at)
        ):
            p = rw.payload
            ev = p.get("evidence", {})
            end = datetime.fromisoformat(p["window_end"])
            if ev.get("expected_rate") is not None:
                expected_at[end] = float(ev["expected_rate"])
            fired.append(
                {
                    "alert_id": rw.alert_id,
                    "warning_id": rw.id,
                    "status": rw.status,
                    "level": rw.level,
                    "detector": p.get("detector"),
                    "window_start": _utc(p["window_start"]),
                    "window_end": end.astimezone(UTC).isoformat(),
                    "raised_at": p.get("raised_at"),
                    "summary": p.get("summary"),
                    "evidence": ev,
                }
            )
            # a week the cell statistics never saw is drawn from the warning's own evidence
            start = datetime.fromisoformat(p["window_start"])
            if end - start <= timedelta(days=7, hours=1) and not any(
                w["week_end"] == end for w in weeks.values()
            ):
                weeks[start] = {
                    "week_start": start,
                    "week_end": end,
                    "tested": int(ev.get("tested", 0)),
                    "failed": int(ev.get("failed", 0)),
                    "from_warning": True,
                }
    points = _with_band(sorted(weeks.values(), key=lambda w: w["week_start"]), expected_at)
    target = None
    if industry is not None:
        target = catalogue.target_for_industry(industry)
    return {
        "county": region,
        "industry": industry,
        "item": item,
        "target": target,
        "points": points,
        "fired": fired,
        "alerts": [{"id": a.id, "level": a.level, "state": a.state, "summary": a.summary} for a in alerts],
    }


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).isoformat()


def _with_band(weeks: list[dict[str, Any]], expected_at: dict[datetime, float]) -> list[dict[str, Any]]:
    """Each week's failure rate with its expected rate and ± 2 binomial standard errors around it."""
    out: list[dict[str, Any]] = []
    for i, w in enumerate(weeks):
        tested, failed = w["tested"], w["failed"]
        expected = expected_at.get(w["week_end"])
        source = "detector"
        if expected is None:
            past = weeks[max(0, i - BASELINE_WEEKS) : i]
            n = sum(p["tested"] for p in past)
            expected = sum(p["failed"] for p in past) / n if n else None
            source = "trailing"
        low = high = None
        if expected is not None and tested:
            half = 2 * math.sqrt(max(expected * (1 - expected), 1e-9) / tested)
            low, high = max(0.0, expected - half), min(1.0, expected + half)
        out.append(
            {
                "week_start": w["week_start"].astimezone(UTC).isoformat(),
                "week_end": w["week_end"].astimezone(UTC).isoformat(),
                "tested": tested,
                "failed": failed,
                "failure_rate": failed / tested if tested else None,
                "pass_rate": (tested - failed) / tested if tested else None,
                "expected_rate": expected,
                "expected_source": source if expected is not None else None,
                "band_low": low,
                "band_high": high,
                "from_warning": bool(w.get("from_warning")),
            }
        )
    return out


def _period_key(when: datetime, period: Period, catalogue: Catalogue) -> str:
    local = when.astimezone(catalogue.zone)
    if period == "week":
        return local.date().isoformat()
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    if period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    return str(local.year)


def pass_rates(
    session: Session,
    *,
    catalogue: Catalogue,
    principal: Principal,
    period: Period = "month",
    by: Sequence[Literal["county", "industry"]] = ("county", "industry"),
    region: str | None = None,
    industry: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Pass rate per period and group against the policy target (weighted by tested per industry).

    Every period with tests lists every county and/or industry of the catalogue (within the
    principal's scope and the filters); one without tests in it has 0 tested and no rate. A week
    counts in the period of its Monday, in the catalogue's zone."""
    if industry is not None and catalogue.industry(industry) is None:
        raise InvalidInput(f"unknown industry {industry!r}", field="industry")
    regions = _allowed_regions(catalogue, principal, region)
    q = select(CellStat).where(CellStat.region.in_(regions))
    if industry is not None:
        q = q.where(CellStat.industry == industry)
    if since is not None:
        q = q.where(CellStat.week_start >= since)
    if until is not None:
        q = q.where(CellStat.week_start < until)
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for r in session.scalars(q):
        key = (
            _period_key(r.week_start, period, catalogue),
            r.region if "county" in by else "",
            r.industry if "industry" in by else "",
        )
        g = groups[key]
        g[0] += r.tested
        g[1] += r.failed
        g[2] += catalogue.target_for_industry(r.industry) * r.tested
    # every county / industry of the catalogue in every period of the table, untested ones with 0
    industries = [industry] if industry is not None else [i.slug for i in catalogue.industries]
    for per in {k[0] for k in groups}:
        for reg in regions if "county" in by else [""]:
            for ind in industries if "industry" in by else [""]:
                groups.setdefault((per, reg, ind), [0, 0, 0.0])
    rows = []
    for (per, reg, ind), (tested, failed, weighted) in sorted(groups.items()):
        rate = (tested - failed) / tested if tested else None
        target = weighted / tested if tested else (catalogue.target_for_industry(ind) if ind else None)
        rows.append(
            {
                "period": per,
                "county": reg or None,
                "industry": ind or None,
                "tested": int(tested),
                "failed": int(failed),
                "pass_rate": rate,
                "target": target,
                "met": None if rate is None or target is None else rate >= target - 1e-12,
            }
        )
    return rows
