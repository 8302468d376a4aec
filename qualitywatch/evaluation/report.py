"""Evaluate run directories: QualityWatch's warnings and the baselines, pooled, as one table.

A run directory holds ``truth.json``, ``events.jsonl`` and the warnings file written by
``qualitywatch replay`` (``warnings.jsonl``). The baselines run here on the weekly failure counts of
the same events (duplicates dropped by id): per county (regional), per industry across the
prefecture (industry) and per hazard item across the prefecture (systemic; a baseline's systemic
alarm is an alarm on the item's prefecture-wide count).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from schemas import Catalogue, default_catalogue

from .baselines import BASELINES
from .score import (
    KINDS,
    AlarmWeek,
    Figures,
    Truth,
    alarm_weeks_from_warnings,
    load_truth,
    load_warnings,
    read_jsonl,
    score_run,
)

__all__ = ["METHOD_QW", "baseline_alarms", "evaluate_runs", "format_report", "report_json", "weekly_counts"]

METHOD_QW = "QualityWatch"


def weekly_counts(
    events: Iterable[dict[str, Any]], truth: Truth, catalogue: Catalogue
) -> dict[tuple[str, str], np.ndarray]:
    """Weekly failure counts per (kind, key), duplicates (same id) counted once.

    Systemic keys are the truth's systemic series plus any item outside the catalogue that failed.
    """
    n = truth.weeks
    out: dict[tuple[str, str], np.ndarray] = {}
    for k in KINDS:
        for key in truth.series[k]:
            out[(k, key)] = np.zeros(n)
    seen: set[str] = set()
    for rec in events:
        rid = rec["id"]
        if rid in seen:
            continue
        seen.add(rid)
        if rec.get("passed", True):
            continue
        w = truth.week_index(datetime.fromisoformat(rec["sampled_at"]))
        if not 0 <= w < n:
            continue
        for kind, key in (("regional", rec["region"]), ("industry", rec["industry"])):
            arr = out.get((kind, key))
            if arr is None:
                arr = out[(kind, key)] = np.zeros(n)
            arr[w] += 1
        for item in {catalogue.normalise_item(i) for i in rec.get("failed_items", ())}:
            arr = out.get(("systemic", item))
            if arr is None:
                if catalogue.is_known_item(item):
                    continue  # an item of one industry only: not a systemic series
                arr = out[("systemic", item)] = np.zeros(n)
            arr[w] += 1
    return out


def baseline_alarms(counts: dict[tuple[str, str], np.ndarray]) -> dict[str, set[AlarmWeek]]:
    """Alarm-weeks of every baseline over every series."""
    out: dict[str, set[AlarmWeek]] = {}
    for name, fn in BASELINES.items():
        alarms: set[AlarmWeek] = set()
        for (kind, key), y in counts.items():
            for t in np.flatnonzero(fn(y)):
                alarms.add((kind, key, int(t)))
        out[name] = alarms
    return out


def _record_ids(warnings: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ids of the records behind the warnings (``evidence.record_ids``)."""
    ids: set[str] = set()
    for w in warnings:
        evidence = w.get("evidence")
        if isinstance(evidence, Mapping):
            ids.update(str(i) for i in evidence.get("record_ids") or ())
    return ids


def _check_same_run(warnings_path: Path, ids: set[str], events_path: Path, events: Iterable[Any]) -> None:
    """Refuse warnings none of whose records is in the run's events: another run's, or a stale file."""
    if not ids or any(isinstance(e, Mapping) and str(e.get("id")) in ids for e in events):
        return
    raise ValueError(
        f"{warnings_path}: none of the records behind its warnings is in {events_path}; "
        f"these are the warnings of another run (replay {events_path} again)"
    )


def _pool(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    kinds = {k: Figures() for k in KINDS}
    sizes: dict[str, Figures] = {}
    incidents: list[dict[str, Any]] = []
    for res in results:
        for k, f in res["kinds"].items():
            kinds[k].add(f)
        for s, f in res["sizes"].items():
            sizes.setdefault(s, Figures()).add(f)
        incidents += res["incidents"]
    total = Figures()
    for f in kinds.values():
        total.add(f)
    return {"all": total, "kinds": kinds, "sizes": sizes, "incidents": incidents}


def evaluate_runs(
    run_dirs: Sequence[str | Path],
    warnings_name: str = "warnings.jsonl",
    baselines: bool = True,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Score every run directory and pool the figures per method."""
    cat = catalogue or default_catalogue()
    per_method: dict[str, list[dict[str, Any]]] = {}
    seeds = []
    for d in run_dirs:
        run = Path(d)
        truth = load_truth(run / "truth.json")
        seeds.append(json.loads((run / "truth.json").read_text(encoding="utf-8")).get("seed"))
        warnings = load_warnings(run / warnings_name)
        events_path = run / "events.jsonl"
        events = load_warnings(events_path) if baselines else None
        if events is not None or events_path.is_file():
            ids = _record_ids(warnings)
            _check_same_run(run / warnings_name, ids, events_path, events or read_jsonl(events_path))
        alarms = alarm_weeks_from_warnings(warnings, truth)
        results = {METHOD_QW: score_run(truth, alarms, cat)}
        if events is not None:
            counts = weekly_counts(events, truth, cat)
            for name, ba in baseline_alarms(counts).items():
                results[name] = score_run(truth, ba, cat)
        for name, res in results.items():
            for inc in res["incidents"]:
                inc["seed"] = seeds[-1]
            per_method.setdefault(name, []).append(res)
    pooled = {m: _pool(r) for m, r in per_method.items()}
    return {"runs": [str(d) for d in run_dirs], "seeds": seeds, "methods": pooled}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _row(name: str, f: Figures, alarms: bool = True) -> str:
    pod = "-" if f.pod is None else f"{100 * f.pod:5.1f} %"
    fa, false, ppv = (
        (_fmt(f.fa_per_100, ".3f"), str(f.false), _fmt(f.ppv, ".3f")) if alarms else ("-", "-", "-")
    )
    return (
        f"| {name:<22} | {pod:>7} | {f.detected:>3}/{f.incidents:<3} | {fa:>9} "
        f"| {false:>5} | {ppv:>5} | {_fmt(f.median_delay, '.1f'):>6} |"
    )


_HEAD = (
    "| method                 |     POD | det/inc | FA/100 sw | false |   PPV |  delay |\n"
    "|------------------------|--------:|--------:|----------:|------:|------:|-------:|"
)


def format_report(report: dict[str, Any]) -> str:
    """The table: methods pooled, then QualityWatch per kind and per size (Markdown)."""
    methods = report["methods"]
    lines = [f"runs: {len(report['runs'])} (seeds {', '.join(str(s) for s in report['seeds'])})", "", _HEAD]
    for name, res in methods.items():
        lines.append(_row(name, res["all"]))
    for name, res in methods.items():
        if name != METHOD_QW and name != "Farrington":
            continue
        lines += ["", f"{name} by kind and size", "", _HEAD]
        for k in KINDS:
            lines.append(_row(f"kind {k}", res["kinds"][k]))
        for s in ("low", "medium", "high"):
            if s in res["sizes"]:
                lines.append(_row(f"size {s}", res["sizes"][s], alarms=False))
    lines += [
        "",
        "POD: incidents detected in [start, end + 1 week); FA/100 sw: false alarm-weeks per 100 "
        "series-weeks outside incidents; PPV: true / (true + false) alarm-weeks; delay: median weeks "
        "from the incident's start to its first alarm (detected incidents).",
    ]
    return "\n".join(lines)


def report_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report with figures as plain numbers (for ``--json``)."""
    out: dict[str, Any] = {"runs": report["runs"], "seeds": report["seeds"], "methods": {}}
    for name, res in report["methods"].items():
        out["methods"][name] = {
            "all": res["all"].as_dict(),
            "kinds": {k: f.as_dict() for k, f in res["kinds"].items()},
            "sizes": {s: f.as_dict() for s, f in res["sizes"].items()},
            "incidents": res["incidents"],
        }
    return out
