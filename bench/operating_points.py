"""Detection at matched false-alarm rates: each baseline's threshold swept, next to QualityWatch.

    python bench/operating_points.py RUN_DIR... [--json FILE]

``qualitywatch evaluate`` compares every method at its published threshold, where the count-based
baselines raise 15 to 50 times more false alarms than QualityWatch, so their detection counts are
bought with those alarms. This sweeps each baseline's threshold (Farrington's ``alpha``, the EARS
cut-offs) over the same run directories (``bench/detection.py --keep DIR`` leaves them) and scores
every setting exactly as ``evaluate`` does. Then, for each baseline, the most sensitive setting that
raises no more false alarm-weeks than QualityWatch: how many incidents it detects at that rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qualitywatch.evaluation.baselines import ears_c1, ears_c2, ears_c3, farrington_levels
from qualitywatch.evaluation.report import weekly_counts
from qualitywatch.evaluation.score import (
    AlarmWeek,
    Figures,
    alarm_weeks_from_warnings,
    load_truth,
    load_warnings,
    score_run,
)
from schemas import default_catalogue

__all__ = ["GRID", "main", "sweep"]

#: the settings swept: the published one first
FARRINGTON_ALPHAS = (0.05, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6)
GRID: dict[str, tuple[float, ...]] = {
    "EARS C1": (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0),
    "EARS C2": (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0),
    "EARS C3": (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0),
    "Farrington": FARRINGTON_ALPHAS,
}
_EARS: dict[str, Callable[..., np.ndarray]] = {"EARS C1": ears_c1, "EARS C2": ears_c2, "EARS C3": ears_c3}
_SETTING = {"EARS C1": "threshold", "EARS C2": "threshold", "EARS C3": "threshold", "Farrington": "alpha"}


def _alarms(counts: dict[tuple[str, str], np.ndarray]) -> dict[tuple[str, float], set[AlarmWeek]]:
    """Alarm-weeks of every baseline setting of :data:`GRID` over every series."""
    out: dict[tuple[str, float], set[AlarmWeek]] = {(m, v): set() for m, vs in GRID.items() for v in vs}
    for (kind, key), y in counts.items():
        for name, fn in _EARS.items():
            for v in GRID[name]:
                out[(name, v)].update((kind, key, int(t)) for t in np.flatnonzero(fn(y, threshold=v)))
        for alpha, fired in farrington_levels(y, FARRINGTON_ALPHAS).items():
            out[("Farrington", alpha)].update((kind, key, int(t)) for t in np.flatnonzero(fired))
    return out


def _pooled(results: list[dict[str, Any]]) -> Figures:
    total = Figures()
    for res in results:
        for figures in res["kinds"].values():
            total.add(figures)
    return total


def sweep(run_dirs: list[Path]) -> dict[str, Any]:
    """QualityWatch and every baseline setting, pooled over ``run_dirs``."""
    cat = default_catalogue()
    per: dict[tuple[str, float | None], list[dict[str, Any]]] = {}
    for run in run_dirs:
        truth = load_truth(run / "truth.json")
        warnings = load_warnings(run / "warnings.jsonl")
        per.setdefault(("QualityWatch", None), []).append(
            score_run(truth, alarm_weeks_from_warnings(warnings, truth), cat)
        )
        counts = weekly_counts(load_warnings(run / "events.jsonl"), truth, cat)
        for (name, value), alarms in _alarms(counts).items():
            per.setdefault((name, value), []).append(score_run(truth, alarms, cat))
    rows = []
    for (name, value), results in per.items():
        f = _pooled(results)
        rows.append(
            {
                "method": name,
                "setting": None if value is None else f"{_SETTING[name]} {value:g}",
                "value": value,
                "detected": f.detected,
                "incidents": f.incidents,
                "false_alarm_weeks": f.false,
                "false_alarms_per_100_series_weeks": f.fa_per_100,
                "ppv": f.ppv,
                "median_delay_weeks": f.median_delay,
            }
        )
    qw = rows[0]
    matched = {}
    for name in GRID:
        within = [
            r for r in rows if r["method"] == name and r["false_alarm_weeks"] <= qw["false_alarm_weeks"]
        ]
        if within:  # the most sensitive setting within QualityWatch's false alarms
            matched[name] = max(within, key=lambda r: (r["detected"], -r["false_alarm_weeks"]))
    return {"runs": [str(r) for r in run_dirs], "rows": rows, "matched": matched}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _line(r: dict[str, Any]) -> str:
    pod = 100 * r["detected"] / r["incidents"] if r["incidents"] else None
    return (
        f"| {r['method']:<12} | {r['setting'] or 'as published':<16} "
        f"| {r['detected']:>3}/{r['incidents']:<3} "
        f"| {_fmt(pod, '5.1f')} % | {_fmt(r['false_alarms_per_100_series_weeks'], '7.3f')} "
        f"| {r['false_alarm_weeks']:>5} | {_fmt(r['ppv'], '.3f')} | {_fmt(r['median_delay_weeks'], '.1f')} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (truth, events, warnings)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = sweep(args.runs)
    print(f"runs: {len(args.runs)}")
    print()
    print("| method       | setting          | det/inc |   POD   | FA/100 sw | false |   PPV | delay |")
    print("|--------------|------------------|--------:|--------:|----------:|------:|------:|------:|")
    for r in report["rows"]:
        print(_line(r))
    qw = report["rows"][0]
    print()
    print(f"At QualityWatch's false alarms ({qw['false_alarm_weeks']} alarm-weeks) or fewer:")
    print(f"  QualityWatch {qw['detected']}/{qw['incidents']}")
    for name, r in report["matched"].items():
        print(f"  {name} ({r['setting']}): {r['detected']}/{r['incidents']} at {r['false_alarm_weeks']}")
    print()
    print(f"command: python {' '.join(sys.argv)}  ({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
