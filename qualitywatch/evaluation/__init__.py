"""Measuring detection honestly: a synthetic stream with ground truth, scoring, and baselines.

* :func:`simulate` / :func:`write_simulation`: the synthetic stream (``qualitywatch simulate``);
* :func:`evaluate_runs` / :func:`format_report`: scoring warnings against the truth next to the
  EARS and Farrington baselines (``qualitywatch evaluate``).
"""

from .report import METHOD_QW, baseline_alarms, evaluate_runs, format_report, report_json, weekly_counts
from .score import (
    CHANGE_DETECTORS,
    Figures,
    Truth,
    alarm_weeks_from_warnings,
    load_truth,
    load_warnings,
    score_run,
)
from .simulate import NEW_HAZARDS, SIZES, SimConfig, Simulation, simulate, systemic_series, write_simulation

__all__ = [
    "CHANGE_DETECTORS",
    "METHOD_QW",
    "NEW_HAZARDS",
    "SIZES",
    "Figures",
    "SimConfig",
    "Simulation",
    "Truth",
    "alarm_weeks_from_warnings",
    "baseline_alarms",
    "evaluate_runs",
    "format_report",
    "load_truth",
    "load_warnings",
    "report_json",
    "score_run",
    "simulate",
    "systemic_series",
    "weekly_counts",
    "write_simulation",
]
