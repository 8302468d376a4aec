"""``qualitywatch replay``: bad lines reported and skipped, duplicates ignored, order restored."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qualitywatch.cli import main
from qualitywatch.replay import BadLine, ReplayError, ReplayStats, replay
from schemas import RiskWarning, uscc_check_char

CST = timezone(timedelta(hours=8))
START = datetime(2025, 1, 6, tzinfo=CST)  # a Monday
NOW = datetime(2026, 1, 1, tzinfo=UTC)
REGIONS = ("653001", "653022", "653023", "653024")
INDUSTRIES = {"textiles": ("formaldehyde", "ph"), "food_processing": ("lead", "coliforms")}


def _enterprise(n: int, region: str) -> str:
    body = f"91{region}MA{n:07d}"
    return body + uscc_check_char(body)


def sampling_records(weeks: int = 14, per_cell: int = 8, seed: int = 5) -> list[dict[str, Any]]:
    """Weekly sampling per county; Akto (653022) worsens from week 9; an Artux enterprise keeps failing."""
    rng = random.Random(seed)
    out = []
    for w in range(weeks):
        for region in REGIONS:
            for industry, items in INDUSTRIES.items():
                for k in range(per_cell):
                    spell = region == "653022" and w >= 9
                    failed = rng.random() < (0.45 if spell else 0.03)
                    if region == "653001" and industry == "textiles" and k == 0 and w % 2 == 0 and w > 3:
                        failed = True
                    out.append(
                        {
                            "id": f"S{len(out):05d}",
                            "sampled_at": (
                                START + timedelta(weeks=w, hours=8 + 17 * k + rng.randrange(3))
                            ).isoformat(),
                            "region": region,
                            "industry": industry,
                            "product": "童装" if industry == "textiles" else "馕",
                            "enterprise_id": _enterprise(k % 3 if spell else k % 6, region),
                            "passed": not failed,
                            "failed_items": [rng.choice(items)] if failed else [],
                            "inspector_id": "INS-1",
                        }
                    )
    out.sort(key=lambda r: (r["sampled_at"], r["id"]))
    return out


def patrol_reports() -> list[dict[str, Any]]:
    return [
        {
            "id": f"P{i}",
            "patrolled_at": (START + timedelta(weeks=i, days=2)).isoformat(),
            "region": "653023",
            "industry": "food_processing",
            "enterprise_id": _enterprise(1, "653023"),
            "inspector_id": "INS-2",
            "hazard": "霉菌",
            "severity": "major" if i == 5 else "general",
            "action": "rectification_ordered",
        }
        for i in range(12)
    ]


def write_lines(path: Path, lines: Iterable[dict[str, Any] | bytes | str]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line, ensure_ascii=False)
            fh.write(line if isinstance(line, bytes) else (line + "\n").encode("utf-8"))
    return path


def run(
    events: Path | None, patrols: Path | None = None, **kwargs: Any
) -> tuple[list[RiskWarning], ReplayStats, list[BadLine]]:
    warnings: list[RiskWarning] = []
    bad: list[BadLine] = []
    stats = replay(events, patrols=patrols, write=warnings.append, now=NOW, on_bad_line=bad.append, **kwargs)
    return warnings, stats, bad


def as_json(warnings: list[RiskWarning]) -> list[str]:
    return [w.model_dump_json() for w in warnings]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return sampling_records()


@pytest.fixture(scope="module")
def clean(
    tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]
) -> tuple[Path, list[RiskWarning]]:
    path = write_lines(tmp_path_factory.mktemp("clean") / "events.jsonl", records)
    warnings, stats, bad = run(path)
    assert not bad and stats.total("accepted") == len(records)
    return path, warnings


def test_the_clean_file_raises_warnings(clean: tuple[Path, list[RiskWarning]]) -> None:
    _, warnings = clean
    kinds = {w.kind.value for w in warnings}
    assert "regional" in kinds and "enterprise" in kinds, kinds
    akto = [w for w in warnings if w.kind.value == "regional" and w.scope.region == "653022"]
    assert akto and all(w.window_end > START + timedelta(weeks=9) for w in akto)


def test_bad_lines_are_reported_with_line_field_reason_and_good_lines_still_count(
    tmp_path: Path, records: list[dict[str, Any]], clean: tuple[Path, list[RiskWarning]]
) -> None:
    naive = dict(records[5], id="X-naive", sampled_at="2025-01-06T10:00:00")
    wrong = dict(records[6], id="X-wrong", region="650100", enterprise_id="91653001MA0000000X")
    lines: list[dict[str, Any] | bytes | str] = [
        records[0],
        records[1],
        b"\x00\xff\xfe\x9c binary junk \x01\n",  # line 3
        records[2],
        '{"id": "X-1", "sampled_at": ',  # line 5: truncated JSON
        records[3],
        wrong,  # line 7
        records[4],
        "   ",  # line 9: blank
        "[1, 2, 3]",  # line 10
        naive,  # line 11
        *records[5:40],
        records[0],  # a resubmission (well within the dedup horizon)
        *records[40:],
    ]
    path = write_lines(tmp_path / "events.jsonl", lines)
    warnings, stats, bad = run(path)

    assert [(b.line, b.field, b.errors[0].type) for b in bad] == [
        (3, "", "json_invalid"),
        (5, "", "json_invalid"),
        (7, "region", "unknown_region"),
        (9, "", "blank_line"),
        (10, "", "model_type"),
        (11, "sampled_at", "timezone_aware"),
    ]
    assert all(b.source == str(path) for b in bad)
    assert bad[0].reason.startswith("Invalid JSON")
    assert [e.field for e in bad[2].errors] == ["region", "enterprise_id"]
    assert "check character" in bad[2].errors[1].reason
    assert bad[3].reason == "blank line"
    assert bad[5].reason.startswith("must carry a UTC offset")
    assert bad[2].describe().startswith(f"{path}:7: region: '650100' is not a county code")
    assert json.loads(bad[2].text)["id"] == "X-wrong"

    (src,) = stats.sources
    assert (src.lines, src.rejected, src.accepted, src.duplicate, src.late) == (
        len(lines),
        6,
        len(records),
        1,
        0,
    )
    # the garbage changed nothing: the same warnings as the clean file
    assert as_json(warnings) == as_json(clean[1])


def test_duplicates_do_not_change_the_warnings(
    tmp_path: Path, records: list[dict[str, Any]], clean: tuple[Path, list[RiskWarning]]
) -> None:
    lines: list[dict[str, Any]] = []
    repeated = 0
    for n, rec in enumerate(records):
        lines.append(rec)
        if n % 7 == 0:
            lines.append(rec)  # resubmitted at once
            repeated += 1
        if n % 11 == 0 and n >= 40:
            lines.append(records[n - 40])  # resubmitted days later (well within the dedup horizon)
            repeated += 1
    path = write_lines(tmp_path / "events.jsonl", lines)
    warnings, stats, bad = run(path)
    assert not bad
    assert stats.total("duplicate") == repeated and stats.total("accepted") == len(records)
    assert clean[1] and as_json(warnings) == as_json(clean[1])


def test_out_of_order_within_the_lateness_gives_the_same_warnings(
    tmp_path: Path, records: list[dict[str, Any]], clean: tuple[Path, list[RiskWarning]]
) -> None:
    rng = random.Random(11)
    delay = {
        r["id"]: timedelta(hours=rng.uniform(0, 30)) for r in records
    }  # each record arrives up to 30 h late
    shuffled = sorted(records, key=lambda r: datetime.fromisoformat(r["sampled_at"]) + delay[r["id"]])
    assert shuffled != records and shuffled[0]["sampled_at"] > records[0]["sampled_at"]
    times = [datetime.fromisoformat(r["sampled_at"]) for r in shuffled]
    behind = max(max(times[: i + 1]) - t for i, t in enumerate(times))
    assert timedelta(hours=12) < behind < timedelta(days=2)  # EngineConfig.allowed_lateness
    path = write_lines(tmp_path / "events.jsonl", shuffled)
    warnings, stats, bad = run(path)
    assert not bad and stats.total("late") == 0 and stats.total("before_epoch") == 0
    assert stats.total("accepted") == len(records)
    assert clean[1] and sorted(as_json(warnings)) == sorted(as_json(clean[1]))


def test_a_file_that_starts_out_of_order_loses_nothing(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    sunday = dict(records[1], id="S-sunday", sampled_at=(START - timedelta(hours=3)).isoformat())
    path = write_lines(tmp_path / "events.jsonl", [records[0], sunday, *records[1:]])
    warnings, stats, bad = run(path)
    assert not bad and stats.total("before_epoch") == 0 and stats.total("accepted") == len(records) + 1
    # the first week watched is the Sunday's week, as if the file had been sorted
    assert min(w.window_start for w in warnings if w.kind.value == "regional") <= START


def test_patrols_are_merged_by_event_time(tmp_path: Path, clean: tuple[Path, list[RiskWarning]]) -> None:
    patrols = write_lines(tmp_path / "patrols.jsonl", patrol_reports())
    warnings, stats, bad = run(clean[0], patrols)
    assert not bad
    assert [(s.lines, s.accepted) for s in stats.sources] == [
        (len(sampling_records()), len(sampling_records())),
        (12, 12),
    ]
    site = [w for w in warnings if w.kind.value == "site"]
    assert any(
        w.scope.enterprise_id == _enterprise(1, "653023") and "P5" in w.evidence.record_ids for w in site
    )
    # the sampling warnings are those of the sampling file alone
    assert sorted(as_json([w for w in warnings if w.kind.value != "site"])) == sorted(as_json(clean[1]))
    # warnings come out in event-time order of what raised them (within the engine's lateness)
    raised = [
        w.raised_at for w in warnings if w.status.value == "firing" and w.kind.value in ("site", "enterprise")
    ]
    assert all(b >= a - timedelta(days=2) for a, b in itertools.pairwise(raised))


def test_replay_is_deterministic(tmp_path: Path, clean: tuple[Path, list[RiskWarning]]) -> None:
    patrols = write_lines(tmp_path / "patrols.jsonl", patrol_reports())
    outputs = []
    for n in range(2):
        out = tmp_path / f"warnings-{n}.jsonl"
        result = CliRunner().invoke(
            main,
            [
                "replay",
                str(clean[0]),
                "--patrols",
                str(patrols),
                "--out",
                str(out),
                "--now",
                "2026-01-01",
                "-q",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] and outputs[0] == outputs[1]


def test_flush_closes_the_open_weeks(clean: tuple[Path, list[RiskWarning]]) -> None:
    flushed, _, _ = run(clean[0])
    open_end, _, _ = run(clean[0], flush=False)
    assert set(as_json(open_end)) < set(as_json(flushed))
    # only the flush closes the last week (Akto is still failing then): weekly detectors speak about it
    last_week = START + timedelta(weeks=14)
    weekly = ("regional", "industry", "systemic")
    assert any(w.window_end == last_week and w.kind.value in weekly for w in flushed)
    assert not any(w.window_end == last_week and w.kind.value in weekly for w in open_end)


def test_the_validation_clock_is_fixed_by_now(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    path = write_lines(tmp_path / "events.jsonl", records)
    warnings: list[RiskWarning] = []
    bad: list[BadLine] = []
    stats = replay(path, write=warnings.append, now=datetime(2025, 2, 1, tzinfo=UTC), on_bad_line=bad.append)
    later = [r for r in records if r["sampled_at"] > "2025-02-01T08:10"]
    assert stats.total("rejected") == len(later) == len(bad)
    assert {(b.field, b.errors[0].type) for b in bad} == {("sampled_at", "in_future")}
    with pytest.raises(ValueError, match="timezone-aware"):
        replay(path, write=warnings.append, now=datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_progress_is_reported_in_bytes(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    path = write_lines(tmp_path / "events.jsonl", records)
    seen: list[int] = []
    replay(path, write=lambda w: None, now=NOW, on_progress=seen.append)
    assert sum(seen) == path.stat().st_size and len(seen) <= 1 + path.stat().st_size // (1 << 20)


def test_an_unreadable_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read"):
        replay(tmp_path / "missing.jsonl", write=lambda w: None, now=NOW)
    result = CliRunner().invoke(
        main, ["replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "w")]
    )
    assert result.exit_code != 0 and "does not exist" in result.output


def test_cli_reports_bad_lines_on_stderr_and_in_the_errors_file(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    events = write_lines(
        tmp_path / "events.jsonl",
        [
            records[0],
            b"\xff\xfe\n",
            dict(records[1], industry="aerospace"),
            *records[2:9],
            records[2],
            *records[9:],
        ],
    )
    patrols = write_lines(tmp_path / "patrols.jsonl", [*patrol_reports(), "not json"])
    out, errors = tmp_path / "warnings.jsonl", tmp_path / "errors.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(events),
            "--patrols",
            str(patrols),
            "--out",
            str(out),
            "--errors",
            str(errors),
            "--now",
            "2026-01-01T08:00:00+08:00",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"rejected {events}:2: Invalid JSON" in result.stderr
    assert f"rejected {events}:3: industry: 'aerospace' is not an industry" in result.stderr
    assert f"rejected {patrols}:13: Invalid JSON" in result.stderr
    assert (
        f"{events}: {len(records) + 2:,} lines read, {len(records) - 1:,} accepted, 1 duplicates"
        in result.stderr
    )
    assert "warnings written" in result.stderr
    rejected = [json.loads(line) for line in errors.read_text(encoding="utf-8").splitlines()]
    assert [(r["source"], r["line"], r["field"]) for r in rejected] == [
        (str(events), 2, ""),
        (str(events), 3, "industry"),
        (str(patrols), 13, ""),
    ]
    assert all(r["reason"] for r in rejected)
    written = [RiskWarning.model_validate_json(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written and {w.kind.value for w in written} >= {"regional", "enterprise", "site"}


def test_cli_limits_the_bad_lines_shown(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    events = write_lines(tmp_path / "events.jsonl", [*["junk"] * 5, *records[:50]])
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(events),
            "--out",
            str(tmp_path / "w.jsonl"),
            "--show-errors",
            "2",
            "--now",
            "2026-01-01",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.count("rejected /") == 2 and "3 more rejected lines not shown" in result.stderr


def test_cli_writes_to_stdout_and_refuses_an_unwritable_output(
    tmp_path: Path, clean: tuple[Path, list[RiskWarning]]
) -> None:
    result = CliRunner().invoke(main, ["replay", str(clean[0]), "--out", "-", "--now", "2026-01-01"])
    assert result.exit_code == 0, result.output
    assert [RiskWarning.model_validate_json(line) for line in result.stdout.splitlines()] == clean[1]
    bad = CliRunner().invoke(
        main, ["replay", str(clean[0]), "--out", str(tmp_path / "no" / "such" / "w.jsonl")]
    )
    assert bad.exit_code == 1 and "cannot write" in bad.output


def test_batch_scoring_gives_the_warnings_of_record_by_record_scoring(tmp_path: Path) -> None:
    """A replay decides the outlier model in batches; a stream one record at a time: same warnings."""
    from detectors import EngineConfig

    rng = random.Random(9)
    records = []
    for n in range(900):
        odd = n % 37 == 5
        values = [rng.gauss(0.4, 0.05), rng.gauss(0.7, 0.03)]
        if odd:
            values = [rng.uniform(0.7, 1.0), rng.uniform(0.1, 0.5)]
        records.append(
            {
                "id": f"T{n:05d}",
                "sampled_at": (START + timedelta(minutes=25 * n)).isoformat(),
                "region": "653022",
                "industry": "textiles",
                "product": "童装",
                "enterprise_id": _enterprise(n % 40, "653022"),
                "passed": True,
                "failed_items": [],
                "inspector_id": "INS-1",
                "test_items": [
                    {"name": "formaldehyde", "value": 75.0 * values[0], "limit": 75.0, "passed": True},
                    {"name": "ph", "value": 7.5 * values[1], "limit": 7.5, "passed": True},
                ],
            }
        )
    path = write_lines(tmp_path / "items.jsonl", records)
    batched, _, _ = run(path)  # the replay's default
    single, _, _ = run(path, config=EngineConfig(batch_scoring=False))
    outliers = [w for w in single if w.detector == "enterprise_outlier"]
    assert len(outliers) >= 5
    assert sorted(as_json(batched)) == sorted(as_json(single))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{events}"], "--out {events} is the EVENTS file"),
        (["--patrols", "{patrols}", "--out", "{patrols}"], "--out {patrols} is the --patrols file"),
        (["--out", "{dir}/w.jsonl", "--errors", "{events}"], "--errors {events} is the EVENTS file"),
        (["--out", "{dir}/w.jsonl", "--errors", "{dir}/w.jsonl"], "--errors {dir}/w.jsonl is the --out file"),
    ],
)
def test_cli_refuses_to_write_over_an_input(
    tmp_path: Path, records: list[dict[str, Any]], args: list[str], message: str
) -> None:
    events = write_lines(tmp_path / "events.jsonl", records[:50])
    patrols = write_lines(tmp_path / "patrols.jsonl", patrol_reports())
    before = events.read_bytes(), patrols.read_bytes()
    names = {"events": events, "patrols": patrols, "dir": tmp_path}
    result = CliRunner().invoke(
        main, ["replay", str(events), *(a.format(**names) for a in args), "--now", "2026-01-01", "-q"]
    )
    assert result.exit_code == 2 and message.format(**names) in result.output, result.output
    assert (events.read_bytes(), patrols.read_bytes()) == before


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
@pytest.mark.parametrize("option", ["--out", "--errors"])
def test_cli_reports_a_full_disk_without_a_traceback(
    tmp_path: Path, records: list[dict[str, Any]], option: str
) -> None:
    events = write_lines(tmp_path / "events.jsonl", ["junk", *records])
    outputs = {"--out": str(tmp_path / "w.jsonl"), "--errors": str(tmp_path / "e.jsonl"), option: "/dev/full"}
    result = CliRunner().invoke(
        main, ["replay", str(events), *itertools.chain(*outputs.items()), "--now", "2026-01-01", "-q"]
    )
    assert result.exit_code == 1, result.output
    assert "Error: cannot write /dev/full: No space left on device" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_byte_order_mark_does_not_cost_the_first_record(
    tmp_path: Path, clean: tuple[Path, list[RiskWarning]]
) -> None:
    """Spreadsheet tools and Windows editors save UTF-8 with a byte-order mark."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + clean[0].read_bytes())
    warnings, stats, bad = run(path)
    assert not bad and stats.total("rejected") == 0
    assert as_json(warnings) == as_json(clean[1])


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        (gzip.compress, "is gzip-compressed: decompress it first"),
        (lambda data: data.decode("utf-8").encode("utf-16"), "is UTF-16 text: save it as UTF-8"),
    ],
)
def test_a_compressed_or_utf16_file_is_refused_as_a_whole(
    tmp_path: Path, records: list[dict[str, Any]], encode: Callable[[bytes], bytes], message: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(encode(write_lines(tmp_path / "plain.jsonl", records[:20]).read_bytes()))
    with pytest.raises(ReplayError, match=f"{path} {message}"):
        run(path)
    result = CliRunner().invoke(main, ["replay", str(path), "--out", str(tmp_path / "w.jsonl"), "-q"])
    assert result.exit_code == 1 and message in result.stderr and "rejected" not in result.stderr


def test_a_failed_replay_leaves_the_existing_outputs_as_they_were(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """An input refused as a whole (here gzip) must not cost last week's warnings or errors file."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(gzip.compress(write_lines(tmp_path / "plain.jsonl", records[:20]).read_bytes()))
    out, errors = tmp_path / "w.jsonl", tmp_path / "e.jsonl"
    out.write_text("last week's warnings\n", encoding="utf-8")
    errors.write_text("last week's errors\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(
        main, ["replay", str(events), "--out", str(out), "--errors", str(errors), "--now", "2026-01-01", "-q"]
    )
    assert result.exit_code == 1 and "gzip-compressed" in result.stderr, result.output
    assert out.read_text(encoding="utf-8") == "last week's warnings\n"
    assert errors.read_text(encoding="utf-8") == "last week's errors\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary file left behind


def test_a_completed_replay_replaces_the_outputs(
    tmp_path: Path, records: list[dict[str, Any]], clean: tuple[Path, list[RiskWarning]]
) -> None:
    out, errors = tmp_path / "w.jsonl", tmp_path / "e.jsonl"
    out.write_text("last week's warnings\n", encoding="utf-8")
    errors.write_text("last week's errors\n", encoding="utf-8")
    out.chmod(0o640)
    args = ["replay", str(clean[0]), "--out", str(out), "--errors", str(errors), "--now", "2026-01-01", "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [RiskWarning.model_validate_json(line) for line in out.read_text().splitlines()] == clean[1]
    assert errors.read_text(encoding="utf-8") == ""
    assert out.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl", "w.jsonl"]


def _other_prefecture(tmp_path: Path) -> Path:
    """The packaged catalogue with Akto's code changed: 653025 is one of its counties, 653022 is not."""
    from schemas.catalogue import DEFAULT_PATH

    path = tmp_path / "other.yaml"
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    path.write_text(text.replace('"653022"', '"653025"'), encoding="utf-8")
    return path


def test_replay_reads_the_catalogue_the_worker_reads_and_catalogue_wins(
    tmp_path: Path, records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from schemas.catalogue import DEFAULT_PATH

    moved = [{**r, "region": "653025"} if r["region"] == "653022" else r for r in records[:400]]
    events = write_lines(tmp_path / "events.jsonl", moved)
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(_other_prefecture(tmp_path)))
    args = ["replay", str(events), "--out", str(tmp_path / "w.jsonl"), "--now", "2026-01-01", "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert " 0 rejected" in result.stderr, result.stderr
    packaged = CliRunner().invoke(main, [*args, "--catalogue", str(DEFAULT_PATH)])
    assert packaged.exit_code == 0, packaged.output
    assert "'653025' is not a county code" in packaged.stderr


def test_replay_names_a_configured_catalogue_it_cannot_read(
    tmp_path: Path, records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = write_lines(tmp_path / "events.jsonl", records[:20])
    monkeypatch.setenv("QW_CATALOGUE_PATH", str(tmp_path / "missing.yaml"))
    result = CliRunner().invoke(main, ["replay", str(events), "--out", str(tmp_path / "w.jsonl"), "-q"])
    assert result.exit_code == 1 and f"cannot read catalogue {tmp_path / 'missing.yaml'}" in result.stderr
