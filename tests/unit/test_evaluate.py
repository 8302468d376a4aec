"""Scoring against a hand-made truth with known answers, and the evaluate command end to end."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from qualitywatch.cli import main
from qualitywatch.evaluation import (
    alarm_weeks_from_warnings,
    evaluate_runs,
    format_report,
    load_truth,
    score_run,
    weekly_counts,
)
from qualitywatch.evaluation.score import _parse_truth
from schemas import default_catalogue

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2021, 1, 4, tzinfo=TZ)


def monday(k: int) -> str:
    return (START + timedelta(weeks=k)).isoformat()


TRUTH = {
    "seed": 0,
    "start": START.isoformat(),
    "weeks": 70,
    "timezone": "Asia/Shanghai",
    "warmup_weeks": 52,
    "series": {
        "regional": ["653001", "653022"],
        "industry": ["textiles", "light_industry"],
        "systemic": ["formaldehyde"],
    },
    "incidents": [
        {
            "id": "R",
            "kind": "regional",
            "scope": {"region": "653001", "industry": None, "item": None},
            "start_week": monday(55),
            "end_week": monday(58),
            "size": "low",
            "shape": "step",
            "odds_ratio": 2.0,
            "cells": [["653001", "textiles"], ["653001", "food_processing"]],
        },
        {
            "id": "I",
            "kind": "industry",
            "scope": {"region": None, "industry": "textiles", "item": None},
            "start_week": monday(60),
            "end_week": monday(62),
            "size": "high",
            "shape": "ramp",
            "odds_ratio": 5.0,
            "cells": [["653022", "textiles"], ["653024", "textiles"]],
        },
        {
            "id": "S",
            "kind": "systemic",
            "scope": {"region": None, "industry": None, "item": "formaldehyde"},
            "start_week": monday(64),
            "end_week": monday(66),
            "size": "medium",
            "shape": "step",
            "odds_ratio": 3.0,
            "cells": [["653023", "textiles"], ["653024", "light_industry"]],
        },
    ],
}


def warning(
    kind: str, key: str, week: int, *, detector: str | None = None, status: str = "firing", weeks: int = 1
) -> dict:
    field = {"regional": "region", "industry": "industry", "systemic": "item"}[kind]
    det = (
        detector
        or {"regional": "regional_rate", "industry": "industry_rate", "systemic": "systemic_item"}[kind]
    )
    return {
        "kind": kind,
        "detector": det,
        "status": status,
        "scope": {"region": None, "industry": None, "item": None, "enterprise_id": None, field: key},
        "window_start": monday(week - weeks + 1),
        "window_end": monday(week + 1),
    }


WARNINGS = [
    warning("regional", "653001", 56),  # true (R), first: delay 1
    warning("regional", "653001", 56),  # the same alarm-week again: counted once
    warning("regional", "653001", 58),  # true: the grace week after R
    warning("regional", "653022", 61),  # explained: industry incident I raised 653022's textiles
    warning("regional", "653022", 53),  # false
    warning("regional", "653022", 45),  # warm-up: ignored
    warning("regional", "653022", 54, status="resolved"),  # not an alarm
    warning("regional", "653022", 54, detector="regional_target"),  # not a change detector
    warning("regional", "653022", 68, weeks=8),  # multi-week window: alarm week 68, false
    warning("industry", "light_industry", 67),  # false: S touched light_industry only up to week 66
    warning("systemic", "formaldehyde", 64),  # true (S), delay 0
    warning("systemic", "formaldehyde", 56),  # explained: R raised 653001 textiles, which tests formaldehyde
]


@pytest.fixture
def scored():
    truth = _parse_truth(TRUTH, "truth")
    return score_run(truth, alarm_weeks_from_warnings(WARNINGS, truth), default_catalogue())


def test_alarm_weeks_use_the_last_week_of_the_window():
    truth = _parse_truth(TRUTH, "truth")
    weeks = alarm_weeks_from_warnings(WARNINGS, truth)
    assert ("regional", "653022", 68) in weeks
    assert ("regional", "653022", 54) not in weeks  # resolved / other detector
    assert len(weeks) == 9  # 12 warnings, one repeat, one resolved, one other detector


def test_per_kind_counts_by_hand(scored):
    k = scored["kinds"]
    assert (k["regional"].true, k["regional"].false, k["regional"].explained) == (2, 2, 1)
    assert (k["industry"].true, k["industry"].false, k["industry"].explained) == (0, 1, 0)
    assert (k["systemic"].true, k["systemic"].false, k["systemic"].explained) == (1, 0, 1)
    # series-weeks after warm-up (52..69 = 18) outside incidents touching the series (+1 week grace):
    # 653001: 18 - R(55..58) = 14; 653022: 18 - I(60..62) = 15; textiles: 18 - R - I - S(64..66) = 8;
    # light_industry: 18 - S = 15; formaldehyde: 18 - R - I - S = 8
    assert k["regional"].series_weeks == 29
    assert k["industry"].series_weeks == 23
    assert k["systemic"].series_weeks == 8


def test_pod_delay_ppv_and_false_alarm_rate(scored):
    k = scored["kinds"]
    assert (k["regional"].pod, k["industry"].pod, k["systemic"].pod) == (1.0, 0.0, 1.0)
    assert k["regional"].delays == [1] and k["systemic"].delays == [0]
    assert k["regional"].fa_per_100 == pytest.approx(100 * 2 / 29)
    assert k["regional"].ppv == pytest.approx(0.5)
    s = scored["sizes"]
    assert (s["low"].detected, s["high"].detected, s["medium"].detected) == (1, 0, 1)
    by_id = {i["id"]: i for i in scored["incidents"]}
    assert by_id["R"]["delay"] == 1 and by_id["I"]["delay"] is None and by_id["S"]["delay"] == 0


def test_no_alarms_means_no_detection_and_no_false_alarms():
    truth = _parse_truth(TRUTH, "truth")
    res = score_run(truth, set(), default_catalogue())
    assert all(f.detected == 0 and f.false == 0 for f in res["kinds"].values())
    assert res["kinds"]["regional"].ppv is None


def test_an_alarm_after_the_grace_week_is_false():
    truth = _parse_truth(TRUTH, "truth")
    res = score_run(truth, {("regional", "653001", 59)}, default_catalogue())
    assert res["kinds"]["regional"].false == 1 and res["kinds"]["regional"].detected == 0


def test_truth_errors_name_the_field():
    bad = json.loads(json.dumps(TRUTH))
    bad["incidents"][0]["kind"] = "county"
    with pytest.raises(ValueError, match=r"incidents\[0\]\.kind"):
        _parse_truth(bad, "truth")
    bad = json.loads(json.dumps(TRUTH))
    del bad["weeks"]
    with pytest.raises(ValueError, match="weeks"):
        _parse_truth(bad, "truth")


def _record(rid: str, week: int, region: str, industry: str, failed: list[str]) -> dict:
    return {
        "id": rid,
        "sampled_at": (START + timedelta(weeks=week, days=1)).isoformat(),
        "region": region,
        "industry": industry,
        "passed": not failed,
        "failed_items": failed,
    }


def test_weekly_counts_drop_duplicates_and_track_new_items():
    truth = _parse_truth(TRUTH, "truth")
    events = [
        _record("a", 3, "653001", "textiles", ["formaldehyde", "ph"]),
        _record("a", 3, "653001", "textiles", ["formaldehyde", "ph"]),  # resubmission
        _record("b", 3, "653022", "food_processing", ["Melamine"]),
        _record("c", 4, "653022", "textiles", []),
    ]
    counts = weekly_counts(events, truth, default_catalogue())
    assert counts[("regional", "653001")][3] == 1
    assert counts[("industry", "textiles")][3] == 1 and counts[("industry", "textiles")][4] == 0
    assert counts[("systemic", "formaldehyde")][3] == 1
    assert counts[("systemic", "melamine")][3] == 1  # a new item becomes a series
    assert ("systemic", "ph") not in counts  # tested by one industry only: not a systemic series


def _write_run(d: Path) -> Path:
    d.mkdir()
    (d / "truth.json").write_text(json.dumps(TRUTH), encoding="utf-8")
    (d / "warnings.jsonl").write_text("".join(json.dumps(w) + "\n" for w in WARNINGS), encoding="utf-8")
    events = [
        _record(f"r{w}-{n}", w, "653001", "textiles", ["formaldehyde"] if n < 2 else [])
        for w in range(70)
        for n in range(5)
    ]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return d


def test_evaluate_pools_runs(tmp_path):
    runs = [_write_run(tmp_path / "a"), _write_run(tmp_path / "b")]
    report = evaluate_runs(runs)
    qw = report["methods"]["QualityWatch"]
    assert qw["all"].incidents == 6 and qw["all"].detected == 4
    assert qw["all"].true == 6 and qw["all"].false == 6
    assert set(report["methods"]) == {"QualityWatch", "EARS C1", "EARS C2", "EARS C3", "Farrington"}
    text = format_report(report)
    assert "| QualityWatch" in text and "| Farrington" in text and "size low" in text
    assert load_truth(runs[0] / "truth.json").weeks == 70


def test_evaluate_command_prints_the_table_and_writes_json(tmp_path):
    run = _write_run(tmp_path / "run")
    out = tmp_path / "fig.json"
    res = CliRunner().invoke(main, ["evaluate", str(run), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "EARS C3" in res.output
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["methods"]["QualityWatch"]["all"]["pod"] == pytest.approx(2 / 3)
    assert figures["methods"]["QualityWatch"]["kinds"]["regional"]["ppv"] == pytest.approx(0.5)


def test_evaluate_command_names_a_missing_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "truth.json").write_text(json.dumps(TRUTH), encoding="utf-8")
    res = CliRunner().invoke(main, ["evaluate", str(run)])
    assert res.exit_code != 0 and "warnings.jsonl" in res.output


def test_evaluate_refuses_the_warnings_of_another_run(tmp_path):
    run = _write_run(tmp_path / "run")
    stale = [dict(w, evidence={"record_ids": ["other-run-1", "other-run-2"]}) for w in WARNINGS]
    (run / "warnings.jsonl").write_text("".join(json.dumps(w) + "\n" for w in stale), encoding="utf-8")
    for args in ([], ["--no-baselines"]):
        res = CliRunner().invoke(main, ["evaluate", str(run), *args])
        assert res.exit_code == 1, res.output
        assert f"{run / 'warnings.jsonl'}: none of the records behind its warnings is in" in res.output
    # one record of the run behind a warning is enough
    stale[0]["evidence"]["record_ids"].append("r56-0")
    (run / "warnings.jsonl").write_text("".join(json.dumps(w) + "\n" for w in stale), encoding="utf-8")
    res = CliRunner().invoke(main, ["evaluate", str(run)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("truth.json", b"not json\n", "truth.json: not JSON (Expecting value at line 1 column 1)"),
        ("truth.json", b"[]\n", "truth.json: must be a JSON object"),
        ("truth.json", b"\xff\xfe\n", "truth.json: not UTF-8 text"),
        ("events.jsonl", b'{"id": "a"}\n\nnot json\n', "events.jsonl:3: not JSON"),
        ("events.jsonl", b'{"id": "a"}\n[1]\n', "events.jsonl:2: not a JSON object"),
    ],
)
def test_evaluate_names_the_file_it_cannot_read(tmp_path, name, content, message):
    run = _write_run(tmp_path / "run")
    (run / name).write_bytes(content)
    res = CliRunner().invoke(main, ["evaluate", str(run)])
    assert res.exit_code == 1 and f"Error: {run / message}" in res.output, res.output


def test_evaluate_reports_an_unwritable_figures_file(tmp_path):
    run = _write_run(tmp_path / "run")
    out = tmp_path / "no" / "such" / "fig.json"
    res = CliRunner().invoke(main, ["evaluate", str(run), "--json", str(out)])
    assert res.exit_code == 1 and f"Error: cannot write {out}: No such file or directory" in res.output


def test_evaluate_refuses_a_run_given_twice(tmp_path, monkeypatch):
    """The same directory under two spellings (or through a link) would count its incidents twice."""
    run = _write_run(tmp_path / "run")
    (tmp_path / "link").symlink_to(run, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for again, message in (("./run/", "run is given twice"), ("link", "link and run are the same run")):
        res = CliRunner().invoke(main, ["evaluate", "run", again, "--no-baselines"])
        assert res.exit_code == 2, res.output
        assert f"Error: {message}: its incidents would count twice" in res.output
