"""The fast sampling decoder agrees with the pydantic model on every line: same records, same errors.

The decoder is a short cut for well-formed lines; the model stays the definition of validity. These
tests feed both the same bytes (hand-written edge cases, every line of a simulated stream, and
hypothesis-generated records with valid and invalid values) and require the same outcome.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import SamplingResult, default_catalogue, uscc_check_char, validation_context
from schemas.fastpath import SamplingDecoder, SamplingRecord

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
BODY = "91653022MA78QK4R5"
USCC = BODY + uscc_check_char(BODY)
CAT = default_catalogue()


def line(**changes: Any) -> bytes:
    data: dict[str, Any] = {
        "id": "S-2026-0001",
        "sampled_at": "2026-03-01T10:00:00+08:00",
        "region": "653022",
        "industry": "food_processing",
        "product": "馕",
        "enterprise_id": USCC,
        "passed": True,
        "failed_items": [],
        "inspector_id": "INS-007",
        "source": "supervision_sampling",
    }
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not ...}, ensure_ascii=False).encode()


def outcome_of_model(raw: bytes | str) -> tuple[str, Any]:
    try:
        model = SamplingResult.model_validate_json(raw, context=validation_context(CAT, NOW))
    except ValidationError as exc:
        return "error", exc.errors(include_url=False)
    return "ok", SamplingRecord.from_model(model)


def outcome_of_decoder(decoder: SamplingDecoder, raw: bytes | str) -> tuple[str, Any]:
    try:
        record = decoder(raw)
    except ValidationError as exc:
        return "error", exc.errors(include_url=False)
    return "ok", record


def assert_agree(raw: bytes | str) -> SamplingDecoder:
    decoder = SamplingDecoder(CAT, now=NOW)
    assert outcome_of_decoder(decoder, raw) == outcome_of_model(raw), raw
    return decoder


EDGE_CASES = [
    line(),
    line(passed=False, failed_items=["铅", " lead"]),  # alias and padding: the model's way
    line(passed=False, failed_items=["铅", "Lead", "lead"]),  # aliases of one item fold to one
    line(passed=False, failed_items=["ethylene oxide"]),  # an item not in the catalogue is kept
    line(passed=False, failed_items=[]),  # a failure without items
    line(passed=False, failed_items=...),  # a failure without the field
    line(passed=True, failed_items=["lead"]),  # items on a pass
    line(failed_items=...),
    line(failed_items=None),  # not nullable
    line(failed_items=["  "], passed=False),
    line(failed_items=["___"], passed=False),
    line(passed="true"),  # a string: refused by both (a JSON boolean only)
    line(passed=1),
    line(passed="maybe"),
    line(id="  S-1  "),  # stripped by the model
    line(id=""),
    line(id="x" * 128),
    line(id="x" * 129),
    line(id="ＳＨ－０１"),  # full-width: the model writes it half-width
    line(id="克州抽检-001"),  # Chinese, already NFKC: the short cut keeps it
    line(id="㍿" * 40),  # 40 characters, 160 once half-width: too long
    line(id=12),
    line(region="653099"),
    line(region=" 653022"),
    line(industry="toys"),
    line(enterprise_id=USCC.lower()),  # upper-cased
    line(enterprise_id=USCC[:-1] + ("0" if USCC[-1] != "0" else "1")),  # wrong check character
    line(enterprise_id=" " + USCC),
    line(product=" 馕 "),
    line(product="Naan"),
    line(product=""),
    line(inspector_id=""),
    line(sampled_at="2026-03-01T10:00:00"),  # naive
    line(sampled_at="2026-03-01 10:00:00+08:00"),
    line(sampled_at="2026-03-01T10:00:00.123456+08:00"),
    line(sampled_at="2026-03-01T10:00:00.1234567+08:00"),
    line(sampled_at="2026-03-01T10:00:00Z"),
    line(sampled_at="2026-03-01T10:00:00+0800"),
    line(sampled_at="2026-03-02T12:09:59+00:00"),  # inside the allowed skew
    line(sampled_at="2026-03-02T12:10:01+00:00"),  # beyond it
    line(sampled_at="2015-01-01T00:00:00+08:00"),  # implausibly old
    line(sampled_at=1772330400),  # a number: the model's way
    line(sampled_at=None),
    line(reported_at="2026-03-01T09:00:00+08:00"),  # before sampled_at
    line(reported_at="2026-03-01T11:00:00+08:00"),
    line(reported_at=None),
    line(reported_at="2026-03-01T11:00:00"),
    line(enterprise_name="喀什某厂"),
    line(enterprise_name=" padded "),
    line(enterprise_name=None),
    line(lab_id="LAB-1"),
    line(lab_id=None),
    line(enterprise_name="", lab_id=""),  # empty is absent
    line(enterprise_name=" ", lab_id="\t"),
    line(source="risk_monitoring"),
    line(source="rumour"),
    line(source=None),
    line(source=...),
    line(extra_field=1),
    line(
        passed=False,
        failed_items=["lead"],
        test_items=[{"name": "铅", "value": 1.3, "limit": 1.0, "unit": "mg/kg", "passed": False}],
    ),
    line(
        passed=False,
        failed_items=["lead"],
        test_items=[{"name": "aflatoxin B1", "value": 9, "limit": 5, "passed": False}],  # unlisted
    ),
    line(test_items=[{"name": "lead", "value": "1.0"}]),
    line(test_items=[{"name": "lead", "value": None, "limit": None, "unit": None, "passed": None}]),
    line(test_items=[{"name": "lead", "unit": " mg "}]),
    line(test_items=[{"name": "lead", "unit": ""}]),
    line(test_items=[{"name": " "}]),
    line(test_items=[{"name": "lead", "colour": "red"}]),
    line(test_items=[]),
    line(test_items=None),
    # control characters in text: refused by both (NUL, ESC, a line break inside a one-line text)
    line(enterprise_name="喀什\x00某厂"),
    line(enterprise_name="喀什\n某厂"),
    line(enterprise_name="喀什\u2028某厂"),  # not printable, but no control character: accepted
    line(lab_id="LAB\x1b1"),
    line(product="馕\x00"),
    line(inspector_id="INS\t007"),
    line(passed=False, failed_items=["lead\x00"]),
    line(test_items=[{"name": "lead\x07"}]),
    line(test_items=[{"name": "lead", "unit": "mg\x00/kg"}]),
    b"",
    b"not json",
    b"[1, 2]",
    b'{"id": "S-1"}',
    line()[:-5],
]


@pytest.mark.parametrize("raw", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_agree_with_the_model(raw: bytes) -> None:
    assert_agree(raw)


def test_well_formed_lines_take_the_short_cut() -> None:
    decoder = SamplingDecoder(CAT, now=NOW)
    record = decoder(line(passed=False, failed_items=["铅", "lead"], enterprise_id=USCC.lower()))
    assert decoder.slow == 0
    assert record.failed_items == ["lead"]
    assert record.enterprise_id == USCC
    assert record.product == CAT.normalise_product("馕")
    padded = decoder(line(id=" S-9 "))
    assert decoder.slow == 1 and padded.id == "S-9"  # unusual but valid: the model's way, same record


def test_every_simulated_line_agrees(tmp_path) -> None:
    from qualitywatch.evaluation import SimConfig, simulate, write_simulation

    sim = simulate(SimConfig(seed=3, years=1, warmup_weeks=20))
    write_simulation(sim, tmp_path)
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert len(lines) > 10_000
    now = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    decoder = SamplingDecoder(CAT, now=now)
    context = validation_context(CAT, now)
    for raw in lines:
        model = SamplingResult.model_validate_json(raw, context=context)
        assert decoder(raw) == SamplingRecord.from_model(model)
    assert decoder.slow == 0


_text = st.one_of(
    st.sampled_from(["lead", "铅", "Lead ", "aflatoxin_b1", "ethylene oxide", "", " ", "x"]),
    st.text(max_size=6),
)
_time = st.one_of(
    st.datetimes(
        min_value=datetime(2014, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2026, 3, 3),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, CST, timezone(timedelta(hours=-5, minutes=-30))]),
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-03-01T10:00:00", "2026-02-30T10:00:00+08:00", "yesterday", ""]),
    st.integers(min_value=0, max_value=2_000_000_000),
)
_records = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(min_size=0, max_size=4), st.just("S-1")),
        "sampled_at": _time,
        "region": st.sampled_from(["653001", "653022", "653023", "653024", "653099", " 653001"]),
        "industry": st.sampled_from(["food_processing", "textiles", "toys", "Textiles"]),
        "product": _text,
        "enterprise_id": st.sampled_from([USCC, USCC.lower(), USCC[:-1] + "X", f" {USCC}", "1"]),
        "passed": st.one_of(st.booleans(), st.sampled_from(["true", "no", 0, None])),
        "inspector_id": _text,
    },
    optional={
        "reported_at": st.one_of(st.none(), _time),
        "enterprise_name": st.one_of(st.none(), _text),
        "failed_items": st.one_of(st.none(), st.lists(_text, max_size=3)),
        "test_items": st.one_of(
            st.none(),
            st.lists(
                st.fixed_dictionaries(
                    {"name": _text},
                    optional={
                        "value": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                        "limit": st.one_of(st.none(), st.integers(-3, 3)),
                        "unit": st.one_of(st.none(), _text),
                        "passed": st.one_of(st.none(), st.booleans()),
                    },
                ),
                max_size=2,
            ),
        ),
        "lab_id": st.one_of(st.none(), _text),
        "source": st.one_of(st.none(), st.sampled_from(["risk_monitoring", "special_campaign", "x"])),
    },
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records)
def test_generated_records_agree_with_the_model(data: dict[str, Any]) -> None:
    assert_agree(json.dumps(data, ensure_ascii=False).encode())
