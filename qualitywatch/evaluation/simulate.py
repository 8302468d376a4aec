"""A synthetic sampling stream with ground truth, to measure detection honestly.

Several years of weekly supervision sampling across every (county, industry) cell of a catalogue:

* per-cell baseline failure rates (industrial ~5-8 %, food/agricultural ~2-4 %), a slow trend,
  seasonality (summer peaks for microbial items in food), week-to-week overdispersion (gamma-like
  noise on the log-odds of each cell and of each county) and enterprises of differing reliability;
* volumes of 8-30 tests per cell in a normal week, with sampling campaigns and festival weeks
  (Spring Festival, Nowruz, Eid al-Fitr, Eid al-Adha, National Day: 2-3x tests) that change volume,
  never quality;
* injected incidents after a warm-up: ``regional`` (one county, most of its industries),
  ``industry`` (one industry, three or four counties) and ``systemic`` (one hazard item, sometimes a
  NEW one, in 2-3 counties x 2-3 industries), of size low / medium / high = odds ratio 2 / 3 / 5 on
  the failure odds of every affected cell, shaped as a step or a ramp (log-odds rising linearly to
  the peak in the last week), lasting 4-8 weeks, never overlapping within a series;
* duplicate resubmissions (same id, same content), test-item values against limits for a fraction
  of records, and a few patrol reports per week.

The output is deterministic for a seed. The truth format is the shared contract (``truth.json``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from schemas import Catalogue, default_catalogue, uscc_check_char
from schemas.uscc import USCC_ALPHABET
from schemas.weeks import WEEK

__all__ = [
    "NEW_HAZARDS",
    "SIZES",
    "SimConfig",
    "Simulation",
    "simulate",
    "systemic_series",
    "write_simulation",
]

#: incident size -> peak odds ratio on the failure odds of every affected cell
SIZES: dict[str, float] = {"low": 2.0, "medium": 3.0, "high": 5.0}

#: hazards not in the catalogue that a systemic incident may bring, with the industries they reach
NEW_HAZARDS: dict[str, tuple[str, ...]] = {
    "ethylene_oxide": ("food_processing", "agricultural_processing", "light_industry"),
    "melamine": ("food_processing", "agricultural_inputs", "light_industry"),
    "sudan_dyes": ("food_processing", "agricultural_processing", "ethnic_handicrafts"),
    "cadmium": ("agricultural_processing", "ethnic_handicrafts", "light_industry", "consumer_goods"),
    "chlorinated_paraffins": ("light_industry", "consumer_goods", "textiles"),
}

_MICROBIAL = frozenset({"coliforms", "total_bacterial_count", "mould", "aflatoxin_b1"})

# item -> (limit, unit, direction): "max" fails above the limit, "min" below it, None is qualitative
_SPECS: dict[str, tuple[float, str, str]] = {
    "compressive_strength": (42.5, "MPa", "min"),
    "flexural_strength": (6.5, "MPa", "min"),
    "setting_time": (45.0, "min", "min"),
    "radioactivity": (1.0, "index", "max"),
    "water_absorption": (10.0, "%", "max"),
    "formaldehyde": (75.0, "mg/kg", "max"),
    "ph": (7.5, "pH", "max"),
    "azo_dyes": (20.0, "mg/kg", "max"),
    "fibre_content": (5.0, "% deviation", "max"),
    "pesticide_residue": (0.05, "mg/kg", "max"),
    "aflatoxin_b1": (5.0, "μg/kg", "max"),
    "lead": (0.2, "mg/kg", "max"),
    "sulfur_dioxide": (0.1, "g/kg", "max"),
    "moisture": (12.0, "%", "max"),
    "mould": (150.0, "CFU/g", "max"),
    "coliforms": (10.0, "CFU/g", "max"),
    "total_bacterial_count": (10000.0, "CFU/g", "max"),
    "preservatives": (1.0, "g/kg", "max"),
    "sweeteners": (0.65, "g/kg", "max"),
    "plasticisers": (0.1, "%", "max"),
    "heavy_metals": (90.0, "mg/kg", "max"),
    "nutrient_content": (45.0, "%", "min"),
    "active_ingredient": (95.0, "% of label", "min"),
    "germination_rate": (85.0, "%", "min"),
    "ethylene_oxide": (0.02, "mg/kg", "max"),
    "melamine": (2.5, "mg/kg", "max"),
    "sudan_dyes": (0.01, "mg/kg", "max"),
    "cadmium": (0.1, "mg/kg", "max"),
    "chlorinated_paraffins": (1500.0, "mg/kg", "max"),
}

# festivals that bring pre-holiday sampling campaigns; lunar and Islamic dates tabulated per year
_FESTIVALS: dict[str, dict[int, tuple[int, int]]] = {
    "spring_festival": {
        2019: (2, 5),
        2020: (1, 25),
        2021: (2, 12),
        2022: (2, 1),
        2023: (1, 22),
        2024: (2, 10),
        2025: (1, 29),
        2026: (2, 17),
        2027: (2, 6),
        2028: (1, 26),
        2029: (2, 13),
        2030: (2, 3),
    },
    "eid_al_fitr": {
        2019: (6, 5),
        2020: (5, 24),
        2021: (5, 13),
        2022: (5, 2),
        2023: (4, 21),
        2024: (4, 10),
        2025: (3, 30),
        2026: (3, 20),
        2027: (3, 9),
        2028: (2, 26),
        2029: (2, 14),
        2030: (2, 4),
    },
    "eid_al_adha": {
        2019: (8, 12),
        2020: (7, 31),
        2021: (7, 20),
        2022: (7, 9),
        2023: (6, 28),
        2024: (6, 16),
        2025: (6, 6),
        2026: (5, 27),
        2027: (5, 16),
        2028: (5, 5),
        2029: (4, 24),
        2030: (4, 13),
    },
}
_FIXED_FESTIVALS = {"nowruz": (3, 21), "national_day": (10, 1)}

_REGION_WEIGHT = (1.4, 1.1, 0.75, 0.85)  # Artux (the seat) tests most, Akqi least
_INDUSTRY_WEIGHT = {
    "building_materials": 1.0,
    "textiles": 0.9,
    "agricultural_processing": 1.15,
    "food_processing": 1.35,
    "light_industry": 0.8,
    "ethnic_handicrafts": 0.8,
    "agricultural_inputs": 0.9,
    "consumer_goods": 1.0,
}
_PRODUCTS = {
    "building_materials": ("cement", "brick", "ready-mixed mortar"),
    "textiles": ("children_clothing", "carpet", "bedding"),
    "agricultural_processing": ("dried_apricot", "walnut", "flour", "raisins"),
    "food_processing": ("naan", "dairy_product", "cooking_oil", "flour", "pastry"),
    "light_industry": ("plastic_ware", "tableware", "stationery"),
    "ethnic_handicrafts": ("embroidery", "carpet", "felt hat"),
    "agricultural_inputs": ("fertilizer", "seeds", "pesticide"),
    "consumer_goods": ("electric_heater", "toys", "footwear"),
}
_PATROL_FREE = (
    "blocked fire exit",
    "expired raw materials",
    "unlicensed production line",
    "poor storage hygiene",
)


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Everything random follows ``seed``."""

    seed: int = 1
    years: int = 5
    #: first Monday (00:00 in the catalogue zone); None: 2021-01-04
    start: datetime | None = None
    warmup_weeks: int = 52
    #: mean tests per cell per normal week before county and industry weights (cells get ~8-30)
    base_tests: float = 15.0
    duplicate_rate: float = 0.03
    test_items_fraction: float = 0.3
    patrols_per_week: float = 4.0
    #: range (weeks, low inclusive, high exclusive) of the gap between two incidents of the same kind
    incident_gap: tuple[int, int] = (18, 45)

    @property
    def weeks(self) -> int:
        return int(self.years * 52)


@dataclass
class Simulation:
    """Records (JSON-ready dicts in arrival order), patrol reports and the truth."""

    records: list[dict[str, Any]]
    patrols: list[dict[str, Any]]
    truth: dict[str, Any]


def systemic_series(cat: Catalogue) -> list[str]:
    """Hazard items shared by at least two industries: the series a systemic alarm can concern."""
    count: dict[str, int] = {}
    for ind in cat.industries:
        for item in ind.hazard_items:
            count[item] = count.get(item, 0) + 1
    return sorted(i for i, n in count.items() if n >= 2)


def _logit(p: np.ndarray | float) -> Any:
    return np.log(p) - np.log1p(-np.asarray(p))


def _expit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def _org_code(rng: np.random.Generator) -> str:
    """A GB 11714 organisation code (8 characters and its check character)."""
    body = "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRTUWXY"), size=8))
    vals = [int(c) if c.isdigit() else ord(c) - 55 for c in body]
    c9 = 11 - sum(v * w for v, w in zip(vals, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    check = "X" if c9 == 10 else "0" if c9 == 11 else str(c9)
    return body + check


def _uscc(rng: np.random.Generator, county: str) -> str:
    kind = str(rng.choice(["1", "1", "1", "2", "3"]))
    first17 = "9" + kind + county + _org_code(rng)
    assert all(c in USCC_ALPHABET for c in first17)
    return first17 + uscc_check_char(first17)


class _Builder:
    def __init__(self, config: SimConfig, cat: Catalogue) -> None:
        self.cfg = config
        self.cat = cat
        self.rng = np.random.default_rng(np.random.PCG64(config.seed))
        zone = self.zone = ZoneInfo(cat.timezone)
        self.start = config.start or datetime(2021, 1, 4, tzinfo=zone)
        if self.start.weekday() != 0 or (self.start.hour, self.start.minute) != (0, 0):
            raise ValueError(f"start: {self.start.isoformat()} is not a Monday 00:00")
        self.W = config.weeks
        if config.warmup_weeks + 12 >= self.W:
            raise ValueError(
                f"years: {config.years} leaves no room after the {config.warmup_weeks}-week warm-up"
            )
        self.regions = list(cat.region_codes)
        self.industries = list(cat.industry_slugs)
        self.R, self.I = len(self.regions), len(self.industries)
        self.monday = [self.start + k * WEEK for k in range(self.W)]

    # -- the normal state of the world ------------------------------------------------------------
    def baseline(self) -> None:
        rng, R, n_ind, W = self.rng, self.R, self.I, self.W
        food = np.array([self.cat.industry(s).category == "food_agri" for s in self.industries])  # type: ignore[union-attr]
        base = np.where(food, rng.uniform(0.02, 0.04, (R, n_ind)), rng.uniform(0.05, 0.08, (R, n_ind)))
        t = np.arange(W)[:, None, None] / 52.0
        trend = rng.normal(-0.04, 0.05, (R, n_ind))[None] * t  # slow, mostly improving
        woy = np.array([m.isocalendar()[1] for m in self.monday], dtype=float)
        summer = np.cos(2 * np.pi * (woy - 30.0) / 52.0)
        season = np.where(food, 0.25, 0.06)[None, None, :] * summer[:, None, None]
        noise = rng.normal(0.0, 0.18, (W, R, n_ind)) + rng.normal(0.0, 0.08, (W, R))[:, :, None]
        self.logit = _logit(base)[None] + trend + season + noise  # (W, R, n_ind) log-odds of failure
        self.summer = summer
        # volumes
        rw = np.array(_REGION_WEIGHT[:R] + (1.0,) * max(0, R - len(_REGION_WEIGHT)))[:R]
        iw = np.array([_INDUSTRY_WEIGHT.get(s, 1.0) for s in self.industries])
        mean = self.cfg.base_tests * rw[:, None] * iw[None, :]
        mult = np.ones((W, R, n_ind))
        self.campaign = np.zeros((W, R, n_ind), dtype=bool)
        self._festivals(mult, food)
        self._campaigns(mult)
        month = np.array([m.month for m in self.monday])
        winter = np.isin(month, (12, 1, 2))
        if "building_materials" in self.industries:
            mult[winter, :, self.industries.index("building_materials")] *= 0.6  # construction pauses
        lam = mean[None] * mult * rng.gamma(25.0, 1 / 25.0, (W, R, n_ind))
        self.tests = rng.poisson(lam)
        # item mix per industry (Dirichlet), shared items keep their own weight in each industry
        self.item_weights = {
            s: rng.dirichlet(np.full(len(self.cat.items_for_industry(s)), 2.0)) for s in self.industries
        }
        # enterprises: a pool per cell with reliability offsets (centred) and Zipf-like sampling weights
        self.enterprises: dict[tuple[int, int], tuple[list[str], np.ndarray, np.ndarray]] = {}
        for r, code in enumerate(self.regions):
            for i in range(n_ind):
                n = int(rng.integers(12, 40))
                ids = [_uscc(rng, code) for _ in range(n)]
                w = 1.0 / np.arange(1, n + 1) ** 0.8
                w = rng.permutation(w / w.sum())
                off = rng.normal(0.0, 0.6, n)
                off -= float(np.dot(w, off))
                self.enterprises[(r, i)] = (ids, w, off)

    def _festivals(self, mult: np.ndarray, food: np.ndarray) -> None:
        years = range(self.start.year, self.monday[-1].year + 2)
        dates = []
        for table in _FESTIVALS.values():
            dates += [datetime(y, *table[y], tzinfo=self.zone) for y in years if y in table]
        for y in years:
            dates += [datetime(y, m, d, tzinfo=self.zone) for m, d in _FIXED_FESTIVALS.values()]
        self.festival_weeks: set[int] = set()
        for d in dates:
            k = (d - self.start).days // 7
            for wk in (k - 1, k):  # the week before and the week of the festival
                if 0 <= wk < self.W:
                    self.festival_weeks.add(wk)
                    mult[wk][:, food] *= self.rng.uniform(2.0, 3.0)
                    mult[wk][:, ~food] *= self.rng.uniform(1.3, 2.0)

    def _campaigns(self, mult: np.ndarray) -> None:
        rng = self.rng
        for _year in range(self.cfg.years):
            for r in range(self.R):  # county campaigns on a few industries
                for _ in range(2):
                    k, d = int(rng.integers(0, self.W)), int(rng.integers(2, 5))
                    inds = rng.choice(self.I, size=int(rng.integers(1, 4)), replace=False)
                    f = rng.uniform(1.5, 2.5)
                    for i in inds:
                        mult[k : k + d, r, i] *= f
                        self.campaign[k : k + d, r, i] = True
            for i in range(self.I):  # prefecture-wide industry campaigns
                if rng.random() < 0.7:
                    k, d = int(rng.integers(0, self.W)), int(rng.integers(2, 4))
                    f = rng.uniform(1.5, 2.5)
                    mult[k : k + d, :, i] *= f
                    self.campaign[k : k + d, :, i] = True

    # -- incidents ----------------------------------------------------------------------------------
    def incidents(self) -> None:
        rng, W, warm = self.rng, self.W, self.cfg.warmup_weeks
        self.inc_logor = np.zeros((W, self.R, self.I))
        self.sys_logor: list[tuple[int, int, int, float, str]] = []  # week, r, i, log OR, item
        out: list[dict[str, Any]] = []
        plans = []
        for kind in ("regional", "industry", "systemic"):
            t = warm + int(rng.integers(1, 20))
            while True:
                d = int(rng.integers(4, 9))
                if t + d > W - 2:
                    break
                plans.append((t, d, kind))
                t += d + int(rng.integers(*self.cfg.incident_gap))
        n = len(plans)
        sizes = rng.permutation(np.resize(np.array(list(SIZES)), n))
        shapes = rng.choice(["step", "ramp"], size=n)
        shared = systemic_series(self.cat)
        new_used: list[str] = []
        for n_, (t, d, kind) in enumerate(sorted(plans)):
            size, shape = str(sizes[n_]), str(shapes[n_])
            orr = SIZES[size]
            scope: dict[str, str | None] = {"region": None, "industry": None, "item": None}
            if kind == "regional":
                r = int(rng.integers(self.R))
                k = int(rng.integers(max(2, self.I // 2 + 1), self.I + 1))
                inds = sorted(rng.choice(self.I, size=k, replace=False).tolist())
                cells = [(r, i) for i in inds]
                scope["region"] = self.regions[r]
            elif kind == "industry":
                i = int(rng.integers(self.I))
                k = int(rng.integers(max(2, self.R - 1), self.R + 1))
                regs = sorted(rng.choice(self.R, size=k, replace=False).tolist())
                cells = [(r, i) for r in regs]
                scope["industry"] = self.industries[i]
            else:
                fresh = [
                    h
                    for h in NEW_HAZARDS
                    if h not in new_used and sum(s in self.industries for s in NEW_HAZARDS[h]) >= 2
                ]
                if fresh and rng.random() < 0.4:
                    item = str(rng.choice(fresh))
                    new_used.append(item)
                    candidates = [self.industries.index(s) for s in NEW_HAZARDS[item] if s in self.industries]
                else:
                    item = str(rng.choice(shared))
                    candidates = [
                        n for n, s in enumerate(self.industries) if item in self.cat.items_for_industry(s)
                    ]
                ni = int(rng.integers(2, min(3, len(candidates)) + 1))
                inds = sorted(rng.choice(candidates, size=ni, replace=False).tolist())
                nr = int(rng.integers(2, min(3, self.R) + 1))
                regs = sorted(rng.choice(self.R, size=nr, replace=False).tolist())
                cells = [(r, i) for r in regs for i in inds]
                scope["item"] = item
            for k in range(d):
                lo = math.log(orr) * ((k + 1) / d if shape == "ramp" else 1.0)
                for r, i in cells:
                    if kind == "systemic":
                        self.sys_logor.append((t + k, r, i, lo, str(scope["item"])))
                    else:
                        self.inc_logor[t + k, r, i] += lo
            out.append(
                {
                    "id": f"inc-{n_ + 1:03d}",
                    "kind": kind,
                    "scope": scope,
                    "start_week": self.monday[t].isoformat(),
                    "end_week": (self.monday[t] + d * WEEK).isoformat(),
                    "size": size,
                    "shape": shape,
                    "odds_ratio": orr,
                    "cells": [[self.regions[r], self.industries[i]] for r, i in cells],
                }
            )
        self.truth_incidents = out
        self.new_items = new_used

    # -- records ------------------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        rng, cat = self.rng, self.cat
        sys_map: dict[tuple[int, int, int], tuple[float, str]] = {}
        for w, r, i, lo, item in self.sys_logor:
            sys_map[(w, r, i)] = (lo, item)
        items = {s: cat.items_for_industry(s) for s in self.industries}
        microbial = {s: np.array([it in _MICROBIAL for it in items[s]]) for s in self.industries}
        out: list[tuple[datetime, dict[str, Any]]] = []
        seq = 0
        for w in range(self.W):
            monday = self.monday[w]
            for r, region in enumerate(self.regions):
                for i, slug in enumerate(self.industries):
                    n = int(self.tests[w, r, i])
                    if n == 0:
                        continue
                    ids, ew, eoff = self.enterprises[(r, i)]
                    pick = rng.choice(len(ids), size=n, p=ew)
                    base_lo = self.logit[w, r, i] + self.inc_logor[w, r, i] + eoff[pick]
                    p0 = _expit(base_lo)
                    sysinc = sys_map.get((w, r, i))
                    p1 = _expit(base_lo + sysinc[0]) if sysinc else p0
                    u = rng.random(n)
                    iw = self.item_weights[slug] * np.exp(
                        np.where(microbial[slug], 0.6 * self.summer[w], 0.0)
                    )
                    iw = iw / iw.sum()
                    day = rng.integers(0, 6, n)  # Monday..Saturday
                    minute = rng.integers(8 * 60, 19 * 60, n)
                    jitter = np.minimum(rng.exponential(8 * 60, n), 40 * 60).astype(int)
                    products = _PRODUCTS.get(slug, ("product",))
                    prod = rng.integers(0, len(products), n)
                    insp = rng.integers(1, 9, n)
                    lab = rng.integers(1, 5, n)
                    src = rng.random(n)
                    with_items = rng.random(n) < self.cfg.test_items_fraction
                    dup = rng.random(n) < self.cfg.duplicate_rate
                    dup_delay = rng.integers(60, 40 * 60, n)
                    campaign = bool(self.campaign[w, r, i])
                    county = cat.region(region).name_zh[:3]  # type: ignore[union-attr]
                    for k in range(n):
                        seq += 1
                        failed: list[str] = []
                        if u[k] < p0[k]:
                            m = 2 if rng.random() < 0.2 and len(iw) > 1 else 1
                            failed = [
                                items[slug][j] for j in rng.choice(len(iw), size=m, replace=False, p=iw)
                            ]
                        elif sysinc is not None and u[k] < p1[k]:
                            failed = [sysinc[1]]
                        when = monday + timedelta(days=int(day[k]), minutes=int(minute[k]))
                        arrival = when + timedelta(minutes=int(jitter[k]))
                        e = int(pick[k])
                        rec: dict[str, Any] = {
                            "id": f"S{self.cfg.seed}-{when:%Y%m%d}-{seq:07d}",
                            "sampled_at": when.isoformat(),
                            "reported_at": arrival.isoformat(),
                            "region": region,
                            "industry": slug,
                            "product": products[int(prod[k])],
                            "enterprise_id": ids[e],
                            "enterprise_name": f"{county}{slug[:4].upper()}{e:03d}有限公司",
                            "passed": not failed,
                            "failed_items": failed,
                            "inspector_id": f"INS-{region}-{int(insp[k]):02d}",
                            "lab_id": f"LAB-{int(lab[k]):02d}",
                            "source": (
                                "special_campaign"
                                if campaign and src[k] < 0.6
                                else "risk_monitoring"
                                if src[k] > 0.8
                                else "supervision_sampling"
                            ),
                        }
                        if with_items[k]:
                            rec["test_items"] = self._test_items(slug, failed)
                        out.append((arrival, rec))
                        if dup[k]:
                            out.append((arrival + timedelta(minutes=int(dup_delay[k])), rec))
        out.sort(key=lambda x: (x[0], x[1]["id"]))
        return [rec for _, rec in out]

    def _test_items(self, slug: str, failed: list[str]) -> list[dict[str, Any]]:
        rng = self.rng
        others = [it for it in self.cat.items_for_industry(slug) if it not in failed]
        k = min(len(others), int(rng.integers(1, 3)))
        chosen = [others[j] for j in rng.choice(len(others), size=k, replace=False)]
        out = []
        for name in [*failed, *chosen]:
            bad = name in failed
            spec = _SPECS.get(name)
            if spec is None:
                out.append({"name": name, "value": None, "limit": None, "unit": None, "passed": not bad})
                continue
            limit, unit, direction = spec
            if direction == "max":
                f = rng.uniform(1.1, 3.0) if bad else rng.uniform(0.05, 0.9)
            else:
                f = rng.uniform(0.6, 0.95) if bad else rng.uniform(1.02, 1.4)
            out.append(
                {"name": name, "value": round(limit * f, 4), "limit": limit, "unit": unit, "passed": not bad}
            )
        return out

    def patrols(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        seq = 0
        for w in range(self.W):
            for _ in range(int(rng.poisson(self.cfg.patrols_per_week))):
                seq += 1
                r, i = int(rng.integers(self.R)), int(rng.integers(self.I))
                slug = self.industries[i]
                ids, ew, _ = self.enterprises[(r, i)]
                major = rng.random() < 0.05
                hazard = (
                    str(rng.choice(self.cat.items_for_industry(slug)))
                    if rng.random() < 0.7
                    else str(rng.choice(_PATROL_FREE))
                )
                action = (
                    str(rng.choice(["suspended", "escalated"]))
                    if major
                    else str(rng.choice(["rectified_on_site", "rectification_ordered"], p=[0.6, 0.4]))
                )
                when = self.monday[w] + timedelta(
                    days=int(rng.integers(0, 6)), minutes=int(rng.integers(540, 1080))
                )
                out.append(
                    {
                        "id": f"P{self.cfg.seed}-{seq:06d}",
                        "patrolled_at": when.isoformat(),
                        "region": self.regions[r],
                        "industry": slug,
                        "enterprise_id": ids[int(rng.choice(len(ids), p=ew))],
                        "inspector_id": f"INS-{self.regions[r]}-{int(rng.integers(1, 9)):02d}",
                        "hazard": hazard,
                        "severity": "major" if major else "general",
                        "action": action,
                        "note": "",
                    }
                )
        return out

    def truth(self) -> dict[str, Any]:
        return {
            "seed": self.cfg.seed,
            "start": self.start.isoformat(),
            "weeks": self.W,
            "timezone": self.cat.timezone,
            "warmup_weeks": self.cfg.warmup_weeks,
            "series": {
                "regional": list(self.regions),
                "industry": list(self.industries),
                "systemic": systemic_series(self.cat),
            },
            "odds_ratios": dict(SIZES),
            "new_items": list(self.new_items),
            "incidents": self.truth_incidents,
        }


def simulate(config: SimConfig | None = None, catalogue: Catalogue | None = None) -> Simulation:
    """Simulate a stream and its truth (deterministic for ``config.seed``)."""
    cfg = config or SimConfig()
    b = _Builder(cfg, catalogue or default_catalogue())
    b.baseline()
    b.incidents()
    records = b.records()
    patrols = b.patrols()
    return Simulation(records=records, patrols=patrols, truth=b.truth())


def write_simulation(sim: Simulation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``events.jsonl``, ``patrols.jsonl`` and ``truth.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"events": out / "events.jsonl", "patrols": out / "patrols.jsonl", "truth": out / "truth.json"}
    with paths["events"].open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in sim.records)
    with paths["patrols"].open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in sim.patrols)
    paths["truth"].write_text(json.dumps(sim.truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return paths
