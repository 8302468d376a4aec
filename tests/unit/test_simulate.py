"""The simulator: deterministic, valid records, a consistent truth, realistic volumes and rates."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from qualitywatch.cli import main
from qualitywatch.evaluation import NEW_HAZARDS, SIZES, SimConfig, simulate, systemic_series, write_simulation
from qualitywatch.evaluation.simulate import _Builder
from schemas import PatrolReport, SamplingResult, default_catalogue, validation_context

CAT = default_catalogue()


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(seed=7, years=3))


def _week(truth, when: str) -> int:
    start = datetime.fromisoformat(truth["start"])
    return (datetime.fromisoformat(when) - start).days // 7


def test_same_seed_same_output_and_other_seed_differs(sim):
    again = simulate(SimConfig(seed=7, years=3))
    assert again.records == sim.records
    assert again.patrols == sim.patrols
    assert again.truth == sim.truth
    seven, eight = _Builder(SimConfig(seed=7, years=3), CAT), _Builder(SimConfig(seed=8, years=3), CAT)
    seven.baseline()
    eight.baseline()
    assert not np.array_equal(seven.tests, eight.tests)


def test_every_record_validates_against_the_default_catalogue(sim):
    end = datetime.fromisoformat(sim.truth["start"]) + timedelta(weeks=sim.truth["weeks"] + 1)
    ctx = validation_context(CAT, end)
    for n, rec in enumerate(sim.records):
        if n % 4 and rec["passed"] and "test_items" not in rec:
            continue  # every failed record and every record with test items, a quarter of the rest
        model = SamplingResult.model_validate(rec, context=ctx)
        assert model.passed == (not rec["failed_items"])
    for rep in sim.patrols:
        PatrolReport.model_validate(rep, context=ctx)
    assert any("test_items" in r for r in sim.records)
    assert len(sim.patrols) > 2 * sim.truth["weeks"]


def test_first_submissions_arrive_roughly_in_event_time_order(sim):
    seen: set[str] = set()
    newest = None
    for rec in sim.records:
        if rec["id"] in seen:
            continue  # a resubmission may come later; it is dropped as a duplicate anyway
        seen.add(rec["id"])
        t = datetime.fromisoformat(rec["sampled_at"])
        newest = t if newest is None else max(newest, t)
        assert t > newest - timedelta(days=2)  # within the engine's allowed lateness


def test_duplicates_repeat_id_and_content(sim):
    by_id: dict[str, list[dict]] = {}
    for rec in sim.records:
        by_id.setdefault(rec["id"], []).append(rec)
    dups = [v for v in by_id.values() if len(v) > 1]
    assert 0.01 < len(dups) / len(by_id) < 0.06
    assert all(v[0] == v[1] for v in dups)


def test_truth_is_consistent(sim):
    truth = sim.truth
    warm, weeks = truth["warmup_weeks"], truth["weeks"]
    assert truth["series"]["regional"] == list(CAT.region_codes)
    assert truth["series"]["industry"] == list(CAT.industry_slugs)
    assert truth["series"]["systemic"] == systemic_series(CAT)
    assert {i["kind"] for i in truth["incidents"]} == {"regional", "industry", "systemic"}
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for inc in truth["incidents"]:
        s, e = _week(truth, inc["start_week"]), _week(truth, inc["end_week"])
        assert warm <= s < e <= weeks
        assert 4 <= e - s <= 8
        assert inc["odds_ratio"] == SIZES[inc["size"]]
        assert inc["shape"] in ("step", "ramp")
        regions = {r for r, _ in inc["cells"]}
        industries = {i for _, i in inc["cells"]}
        scope = inc["scope"]
        if inc["kind"] == "regional":
            assert regions == {scope["region"]} and len(industries) >= 5
            key = scope["region"]
        elif inc["kind"] == "industry":
            assert industries == {scope["industry"]} and len(regions) >= 3
            key = scope["industry"]
        else:
            assert len(regions) >= 2 and len(industries) >= 2
            item = key = scope["item"]
            if item in NEW_HAZARDS:
                assert not CAT.is_known_item(item) and item in truth["new_items"]
            else:
                assert all(item in CAT.items_for_industry(i) for i in industries)
        for a, b in spans.get((inc["kind"], key), []):
            assert e <= a or b <= s, f"{inc['id']} overlaps another incident of the same series"
        spans.setdefault((inc["kind"], key), []).append((s, e))


def test_baseline_rates_and_volumes_are_plausible(sim):
    warm = sim.truth["warmup_weeks"]
    start = datetime.fromisoformat(sim.truth["start"])
    tested: Counter[tuple[str, str]] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    seen = set()
    for rec in sim.records:
        if rec["id"] in seen:
            continue
        seen.add(rec["id"])
        if (datetime.fromisoformat(rec["sampled_at"]) - start).days // 7 >= warm:
            continue  # warm-up only: no incidents there
        cat = CAT.industry(rec["industry"]).category
        tested[(cat, rec["region"])] += 1
        failed[(cat, rec["region"])] += not rec["passed"]
    for (cat, _region), n in tested.items():
        rate = failed[(cat, _region)] / n
        assert (0.035 < rate < 0.11) if cat == "industrial" else (0.012 < rate < 0.06)
    per_cell_week = sum(tested.values()) / (warm * len(CAT.region_codes) * len(CAT.industry_slugs))
    assert 8 <= per_cell_week <= 30


def test_incidents_raise_failures_in_their_cells_and_new_items_appear_only_then(sim):
    truth = sim.truth
    start = datetime.fromisoformat(truth["start"])
    cell_week: Counter[tuple[str, str, int]] = Counter()
    cell_fail: Counter[tuple[str, str, int]] = Counter()
    new_item_weeks: dict[str, set[int]] = {}
    for rec in {r["id"]: r for r in sim.records}.values():
        w = (datetime.fromisoformat(rec["sampled_at"]) - start).days // 7
        cell_week[(rec["region"], rec["industry"], w)] += 1
        cell_fail[(rec["region"], rec["industry"], w)] += not rec["passed"]
        for item in rec["failed_items"]:
            if item in NEW_HAZARDS:
                new_item_weeks.setdefault(item, set()).add(w)
    inside = [0, 0]
    before = [0, 0]
    for inc in truth["incidents"]:
        if inc["size"] != "high":
            continue
        s, e = _week(truth, inc["start_week"]), _week(truth, inc["end_week"])
        for r, i in inc["cells"]:
            for w in range(s, e):
                inside[0] += cell_week[(r, i, w)]
                inside[1] += cell_fail[(r, i, w)]
            for w in range(s - 20, s - 4):
                before[0] += cell_week[(r, i, w)]
                before[1] += cell_fail[(r, i, w)]
    if inside[0]:
        assert inside[1] / inside[0] > 2.0 * before[1] / before[0]
    for item, weeks in new_item_weeks.items():
        inc = next(i for i in truth["incidents"] if i["scope"]["item"] == item)
        s, e = _week(truth, inc["start_week"]), _week(truth, inc["end_week"])
        assert weeks <= set(range(s, e))


def test_festival_weeks_bring_more_tests_not_more_failures():
    b = _Builder(SimConfig(seed=3, years=3), CAT)
    b.baseline()
    fest = sorted(w for w in b.festival_weeks if w < b.W)
    normal = [w for w in range(b.W) if w not in b.festival_weeks and not b.campaign[w].any()]
    assert b.tests[fest].sum() / len(fest) > 1.5 * b.tests[normal].sum() / len(normal)
    # quality (the log-odds of failure) does not depend on volume
    assert abs(float(np.mean(b.logit[fest])) - float(np.mean(b.logit[normal]))) < 0.15


def test_write_simulation_writes_the_contract_files(sim, tmp_path):
    paths = write_simulation(sim, tmp_path / "run")
    truth = json.loads(paths["truth"].read_text(encoding="utf-8"))
    assert truth == json.loads(json.dumps(sim.truth))
    lines = paths["events"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(sim.records) and json.loads(lines[0]) == sim.records[0]
    assert sum(1 for _ in paths["patrols"].open(encoding="utf-8")) == len(sim.patrols)


def test_too_short_a_run_is_refused():
    with pytest.raises(ValueError, match="years"):
        simulate(SimConfig(seed=1, years=1))


def test_simulate_into_a_path_that_cannot_be_a_directory_is_an_error(tmp_path):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    target = tmp_path / "a-file" / "run"
    result = CliRunner().invoke(main, ["simulate", "--years", "2", "--out", str(target)])
    assert result.exit_code == 1, result.output
    assert f"Error: cannot write {target}: Not a directory" in result.output


def test_simulate_names_the_replay_that_refuses_none_of_its_records(tmp_path):
    """The simulated weeks may run past today, and replay refuses records after its clock."""
    result = CliRunner().invoke(main, ["simulate", "--years", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    step = result.output.splitlines()[-1]
    assert step.startswith("next: qualitywatch replay ") and "--now 2023-01-02T00:00:00+08:00" in step
    replayed = CliRunner().invoke(main, [*shlex.split(step)[2:], "-q"])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stderr.count(" 0 rejected") == 2, replayed.stderr


def test_the_offline_path_follows_the_catalogue_setting(tmp_path, monkeypatch):
    """Another prefecture's analyst sets QW_CATALOGUE_PATH once: simulate, replay and evaluate use it."""
    from schemas.catalogue import DEFAULT_PATH

    other = tmp_path / "other.yaml"
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    other.write_text(text.replace('"653022"', '"653025"'), encoding="utf-8")
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(other))
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["simulate", "--years", "2", "--out", str(run)])
    assert result.exit_code == 0, result.output
    regions = {json.loads(line)["region"] for line in (run / "events.jsonl").open(encoding="utf-8")}
    assert "653025" in regions and "653022" not in regions
    replayed = CliRunner().invoke(main, [*shlex.split(result.output.splitlines()[-1])[2:], "-q"])
    assert replayed.exit_code == 0 and replayed.stderr.count(" 0 rejected") == 2, replayed.stderr
    scored = CliRunner().invoke(main, ["evaluate", str(run), "--no-baselines"])
    assert scored.exit_code == 0, scored.output


def _steps(text: str, command: str) -> tuple[list[str], list[str]]:
    """The arguments of the ``simulate`` and ``replay`` lines that follow ``command`` in ``text``."""
    found: dict[str, list[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        if not line.lstrip().startswith(command):
            continue
        words = shlex.split(line.split("  #")[0])
        if words[0] == command and len(words) > 1:
            at = words.index(command)
            found.setdefault(words[at + 1], words[at + 2 :])
    return found["simulate"], found["replay"]


_PRINTED_CLOCK: dict[tuple[str, ...], str] = {}


def _printed_clock(args: list[str], out: Path) -> str:
    """The --now of the replay line ``qualitywatch simulate ARGS`` prints (one run per ARGS)."""
    key = tuple(args)
    if key not in _PRINTED_CLOCK:
        at = args.index("--out") + 1
        result = CliRunner().invoke(main, ["simulate", *args[:at], str(out), *args[at + 1 :]])
        assert result.exit_code == 0, result.output
        printed = shlex.split(result.output.splitlines()[-1])
        _PRINTED_CLOCK[key] = printed[printed.index("--now") + 1]
    return _PRINTED_CLOCK[key]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "command", "names"),
    [
        ("README.md", "qualitywatch", {}),
        ("Makefile", "$(BIN)/qualitywatch", {"$(RUN_DIR)": "var/demo"}),
    ],
)
def test_the_documented_demo_replays_with_the_clock_simulate_names(tmp_path, name, command, names):
    """The demo's replay needs the clock at the end of the simulated weeks (they may reach past
    today); the README and ``make demo`` spell it out, and must keep naming the one simulate prints."""
    text = (Path(__file__).resolve().parents[2] / name).read_text(encoding="utf-8")
    for key, value in names.items():
        text = text.replace(key, value)
    simulate_args, replay_args = _steps(text, command)
    assert "--now" in replay_args, f"{name}: the demo's replay line names no --now"
    out = simulate_args[simulate_args.index("--out") + 1]
    assert replay_args[0] == f"{out}/events.jsonl"
    simulate_args[simulate_args.index("--out") + 1] = "RUN"  # the same run wherever it is written
    assert replay_args[replay_args.index("--now") + 1] == _printed_clock(simulate_args, tmp_path / "run")
