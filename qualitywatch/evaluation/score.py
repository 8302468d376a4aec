"""Scoring detection against a simulator truth (the rules of the shared evaluation contract).

An ALARM-WEEK is a distinct (kind, series key, week) of a firing warning from a change detector;
the week is the Monday of the last week of the warning's window (``window_end - 7 days``).

* an incident is DETECTED when an alarm-week of its kind and key falls in [start, end + 1 week);
  its delay is the first such week minus the start, in weeks;
* an alarm-week is TRUE inside [start, end + 1 week) of an incident of the same kind and key;
  EXPLAINED when an incident of another kind touched the series then (left out of both counts and
  of the false-alarm denominator); FALSE otherwise;
* false alarms per 100 series-weeks = 100 x false alarm-weeks / series-weeks of the truth's series
  outside every incident touching them (+ 1 week grace), after the warm-up;
* PPV = true / (true + false).

A series is touched by an incident of another kind when one of the incident's cells lies in it: a
county for regional series, an industry for industry series; a hazard item for systemic series is
touched by a regional or industry incident that raised a cell of an industry testing that item.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas import Catalogue, default_catalogue

__all__ = [
    "CHANGE_DETECTORS",
    "KINDS",
    "AlarmWeek",
    "Figures",
    "Truth",
    "alarm_weeks_from_warnings",
    "load_truth",
    "load_warnings",
    "read_jsonl",
    "score_run",
]

KINDS = ("regional", "industry", "systemic")
#: the QualityWatch detectors whose firing warnings count as change alarms
CHANGE_DETECTORS = frozenset({"regional_rate", "industry_rate", "systemic_item"})
_KEY_FIELD = {"regional": "region", "industry": "industry", "systemic": "item"}

AlarmWeek = tuple[str, str, int]  # (kind, series key, week index from the truth's start)


@dataclass(frozen=True)
class Incident:
    id: str
    kind: str
    key: str
    start: int  # week index, inclusive
    end: int  # week index, exclusive
    size: str
    shape: str
    cells: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Truth:
    """A parsed ``truth.json``: weeks as indices from ``start``."""

    start: date
    weeks: int
    warmup: int
    zone: ZoneInfo
    series: dict[str, tuple[str, ...]]
    incidents: tuple[Incident, ...]

    def week_index(self, when: datetime) -> int:
        local = when.astimezone(self.zone).date()
        return (local - self.start).days // 7


def _parse_truth(data: Mapping[str, Any], source: str) -> Truth:
    try:
        zone = ZoneInfo(str(data.get("timezone", "Asia/Shanghai")))
        start = datetime.fromisoformat(data["start"]).astimezone(zone).date()
        weeks = int(data["weeks"])
        warm = int(data.get("warmup_weeks", 52))
        series = {k: tuple(data["series"].get(k, ())) for k in KINDS}
        incs = []
        for n, raw in enumerate(data["incidents"]):
            kind = raw["kind"]
            if kind not in KINDS:
                raise ValueError(f"incidents[{n}].kind: {kind!r} is not one of {', '.join(KINDS)}")
            key = raw["scope"][_KEY_FIELD[kind]]
            if not key:
                raise ValueError(f"incidents[{n}].scope.{_KEY_FIELD[kind]}: missing for a {kind} incident")
            s = (datetime.fromisoformat(raw["start_week"]).astimezone(zone).date() - start).days // 7
            e = (datetime.fromisoformat(raw["end_week"]).astimezone(zone).date() - start).days // 7
            if e <= s:
                raise ValueError(f"incidents[{n}].end_week: not after start_week")
            incs.append(
                Incident(
                    str(raw.get("id", f"inc-{n}")),
                    kind,
                    str(key),
                    s,
                    e,
                    str(raw.get("size", "")),
                    str(raw.get("shape", "")),
                    tuple((str(a), str(b)) for a, b in raw.get("cells", ())),
                )
            )
    except KeyError as exc:
        raise ValueError(f"{source}: missing field {exc.args[0]!r}") from exc
    except (ValueError, TypeError, AttributeError, ZoneInfoNotFoundError) as exc:
        raise ValueError(f"{source}: {exc}") from exc
    return Truth(start, weeks, warm, zone, series, tuple(incs))


def load_truth(path: str | Path) -> Truth:
    """Parse a ``truth.json`` (errors name the file and the field)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {p}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{p}: must be a JSON object, as qualitywatch simulate writes it")
    return _parse_truth(data, str(p))


def load_warnings(path: str | Path) -> list[dict[str, Any]]:
    """Warnings as plain dicts from a JSON-lines file (blank lines skipped)."""
    return list(read_jsonl(path))


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped); errors name the file and line."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from exc
                    if not isinstance(item, dict):
                        raise ValueError(f"{path}:{n}: not a JSON object")
                    yield item
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def alarm_weeks_from_warnings(
    warnings: Iterable[Mapping[str, Any]], truth: Truth, detectors: frozenset[str] = CHANGE_DETECTORS
) -> set[AlarmWeek]:
    """Distinct alarm-weeks of firing change-detector warnings."""
    out: set[AlarmWeek] = set()
    for w in warnings:
        if w.get("status", "firing") != "firing" or w.get("detector") not in detectors:
            continue
        kind = w.get("kind")
        if kind not in _KEY_FIELD:
            continue
        key = (w.get("scope") or {}).get(_KEY_FIELD[kind])
        if not key:
            continue
        end = w["window_end"]
        end_dt = end if isinstance(end, datetime) else datetime.fromisoformat(end)
        out.add((kind, str(key), truth.week_index(end_dt - timedelta(days=7))))
    return out


@dataclass
class Figures:
    """Counts that pool by addition across runs; the ratios are computed from them."""

    incidents: int = 0
    detected: int = 0
    delays: list[int] = field(default_factory=list)
    true: int = 0
    false: int = 0
    explained: int = 0
    series_weeks: int = 0  # false-alarm denominator

    def add(self, other: Figures) -> None:
        self.incidents += other.incidents
        self.detected += other.detected
        self.delays += other.delays
        self.true += other.true
        self.false += other.false
        self.explained += other.explained
        self.series_weeks += other.series_weeks

    @property
    def pod(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None

    @property
    def fa_per_100(self) -> float | None:
        return 100.0 * self.false / self.series_weeks if self.series_weeks else None

    @property
    def ppv(self) -> float | None:
        return self.true / (self.true + self.false) if self.true + self.false else None

    @property
    def median_delay(self) -> float | None:
        return float(statistics.median(self.delays)) if self.delays else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "detected": self.detected,
            "pod": self.pod,
            "true_alarm_weeks": self.true,
            "false_alarm_weeks": self.false,
            "explained_alarm_weeks": self.explained,
            "series_weeks": self.series_weeks,
            "false_alarms_per_100_series_weeks": self.fa_per_100,
            "ppv": self.ppv,
            "median_delay_weeks": self.median_delay,
            "delays": sorted(self.delays),
        }


def _touches(inc: Incident, kind: str, key: str, items_of: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether ``inc`` raised failures in series (kind, key)."""
    if inc.kind == kind:
        return inc.key == key
    if kind == "regional":
        return any(r == key for r, _ in inc.cells)
    if kind == "industry":
        return any(i == key for _, i in inc.cells)
    # systemic series (a hazard item): another kind's incident raised cells of industries testing it
    return any(key in items_of.get(i, ()) for _, i in inc.cells)


def score_run(
    truth: Truth, alarms: Iterable[AlarmWeek], catalogue: Catalogue | None = None
) -> dict[str, Any]:
    """Score one run: ``{"kinds": {kind: Figures}, "sizes": {size: Figures}, "incidents": [...]}``."""
    cat = catalogue or default_catalogue()
    items_of = {i.slug: i.hazard_items for i in cat.industries}
    lo, hi = truth.warmup, truth.weeks
    alarms = {a for a in alarms if lo <= a[2] < hi}
    kinds = {k: Figures() for k in KINDS}
    sizes: dict[str, Figures] = {}
    per_incident = []
    by_series: dict[tuple[str, str], list[int]] = {}
    for kind, key, week in alarms:
        by_series.setdefault((kind, key), []).append(week)
    for inc in truth.incidents:
        weeks = sorted(w for w in by_series.get((inc.kind, inc.key), ()) if inc.start <= w < inc.end + 1)
        fig = Figures(incidents=1, detected=int(bool(weeks)), delays=[weeks[0] - inc.start] if weeks else [])
        kinds[inc.kind].add(fig)
        sizes.setdefault(inc.size, Figures()).add(fig)
        per_incident.append(
            {
                "id": inc.id,
                "kind": inc.kind,
                "key": inc.key,
                "size": inc.size,
                "shape": inc.shape,
                "detected": bool(weeks),
                "delay": weeks[0] - inc.start if weeks else None,
            }
        )
    # alarm-weeks: true / explained / false
    keys = {(k, key) for k in KINDS for key in truth.series[k]} | set(by_series)
    for kind, key in sorted(keys):
        own: set[int] = set()
        other: set[int] = set()
        for inc in truth.incidents:
            if _touches(inc, kind, key, items_of):
                span = range(inc.start, inc.end + 1)
                (own if inc.kind == kind else other).update(span)
        for week in by_series.get((kind, key), ()):
            if week in own:
                kinds[kind].true += 1
            elif week in other:
                kinds[kind].explained += 1
            else:
                kinds[kind].false += 1
        if key in truth.series[kind]:
            kinds[kind].series_weeks += sum(1 for w in range(lo, hi) if w not in own and w not in other)
    return {"kinds": kinds, "sizes": sizes, "incidents": per_incident}
