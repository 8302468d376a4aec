"""Validation of inspectors' records: every refusal names the field and the reason; names are normalised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    FieldError,
    PatrolReport,
    SamplingResult,
    default_catalogue,
    field_errors,
    uscc_check_char,
    validation_context,
)
from schemas.fastpath import SamplingDecoder

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
BODY = "91653022MA78QK4R5"
USCC = BODY + uscc_check_char(BODY)


def sampling(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "S-2026-0001",
        "sampled_at": "2026-03-01T10:00:00+08:00",
        "region": "653022",
        "industry": "textiles",
        "product": "童装",
        "enterprise_id": USCC,
        "passed": True,
        "failed_items": [],
        "inspector_id": "INS-007",
        "source": "supervision_sampling",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def patrol(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "P-2026-0001",
        "patrolled_at": "2026-03-01T15:30:00+08:00",
        "region": "653001",
        "industry": "food_processing",
        "enterprise_id": USCC,
        "inspector_id": "INS-011",
        "hazard": "霉菌",
        "severity": "major",
        "action": "suspended",
        "note": "mould on stored walnuts",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def ctx(now: datetime = NOW) -> dict[str, Any]:
    return validation_context(now=now)


def errors_of(
    model: type[SamplingResult] | type[PatrolReport],
    data: dict[str, Any],
    now: datetime = NOW,
    *,
    as_json: bool = False,
) -> list[FieldError]:
    """The errors of ``data`` given as a dict (what the ingest API validates) or as a JSON line."""
    with pytest.raises(ValidationError) as info:
        if as_json:
            model.model_validate_json(json.dumps(data), context=ctx(now))
        else:
            model.model_validate(data, context=ctx(now))
    return field_errors(info.value)


def only_error(
    model: type[SamplingResult] | type[PatrolReport],
    data: dict[str, Any],
    now: datetime = NOW,
    *,
    as_json: bool = False,
) -> FieldError:
    errors = errors_of(model, data, now, as_json=as_json)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_valid_record_passes_as_json_and_as_a_dict() -> None:
    rec = SamplingResult.model_validate_json(json.dumps(sampling()), context=ctx())
    assert rec.region == "653022" and rec.enterprise_id == USCC and rec.passed
    assert rec.sampled_at == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert SamplingResult.model_validate(sampling(), context=ctx()) == rec


def test_unknown_region_names_the_field_and_the_known_codes() -> None:
    err = only_error(SamplingResult, sampling(region="650100"))
    assert err.field == "region" and err.type == "unknown_region"
    assert "'650100' is not a county code" in err.reason and "653022" in err.reason


def test_unknown_industry() -> None:
    err = only_error(SamplingResult, sampling(industry="aerospace"))
    assert err.field == "industry" and err.type == "unknown_industry"
    assert "'aerospace' is not an industry" in err.reason and "textiles" in err.reason


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (BODY + ("0" if USCC[-1] != "0" else "1"), "check character"),
        (USCC[:-1], "must be 18 characters, got 17"),
        (USCC + "0", "must be 18 characters, got 19"),
        (BODY[:-1] + "I" + USCC[-1], "outside GB 32100-2015"),
        (BODY[:-1] + "O" + USCC[-1], "outside GB 32100-2015"),
        ("91653022MA78QK4R-" + USCC[-1], "outside GB 32100-2015"),
    ],
)
def test_enterprise_id_failing_gb32100_is_refused(code: str, reason: str) -> None:
    err = only_error(SamplingResult, sampling(enterprise_id=code))
    assert err.field == "enterprise_id" and err.type == "invalid_uscc"
    assert reason in err.reason


def test_enterprise_id_is_accepted_in_lower_case_and_stored_upper_case() -> None:
    rec = SamplingResult.model_validate(sampling(enterprise_id=f"  {USCC.lower()} "), context=ctx())
    assert rec.enterprise_id == USCC


def test_enterprise_id_typed_in_full_width_characters_is_stored_half_width() -> None:
    # a Chinese input method in full-width mode types ９１６５… and Ｍ: the same code
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in USCC)
    assert full_width != USCC
    rec = SamplingResult.model_validate(sampling(enterprise_id=full_width), context=ctx())
    assert rec.enterprise_id == USCC
    line = json.dumps(sampling(enterprise_id=full_width), ensure_ascii=False).encode()
    assert SamplingDecoder(default_catalogue(), now=NOW)(line).enterprise_id == USCC


def test_a_failed_batch_must_name_its_hazard_items() -> None:
    err = only_error(SamplingResult, sampling(passed=False, failed_items=[]))
    assert err.field == "failed_items" and err.type == "failed_items_missing"
    assert "at least one hazard item" in err.reason
    err = only_error(SamplingResult, sampling(passed=False, failed_items=...))
    assert err.field == "failed_items" and err.type == "failed_items_missing"


def test_a_passed_batch_must_not_name_failed_items() -> None:
    err = only_error(SamplingResult, sampling(passed=True, failed_items=["甲醛"]))
    assert err.field == "failed_items" and err.type == "failed_items_on_pass"
    assert "formaldehyde" in err.reason


def test_a_blank_failed_item_is_refused() -> None:
    err = only_error(SamplingResult, sampling(passed=False, failed_items=["ph", "  "]))
    assert err.field == "failed_items" and "item 1 is blank" in err.reason


def test_sampled_at_in_the_future_of_the_injected_clock() -> None:
    err = only_error(SamplingResult, sampling(sampled_at="2026-03-02T21:00:00+08:00"))  # 13:00 UTC
    assert err.field == "sampled_at" and err.type == "in_future"
    assert "is in the future" in err.reason and "2026-03-02T12:00:00+00:00" in err.reason
    # the same record is fine an hour later, and a few minutes of clock drift are tolerated
    assert SamplingResult.model_validate(
        sampling(sampled_at="2026-03-02T21:00:00+08:00"), context=ctx(NOW + timedelta(hours=1))
    )
    assert SamplingResult.model_validate(sampling(sampled_at="2026-03-02T20:05:00+08:00"), context=ctx())


def test_sampled_at_implausibly_old() -> None:
    err = only_error(SamplingResult, sampling(sampled_at="2015-01-05T09:00:00+08:00"))
    assert err.field == "sampled_at" and err.type == "implausibly_old"
    assert "implausibly old" in err.reason
    # seven years back is history, not a typo
    assert SamplingResult.model_validate(sampling(sampled_at="2019-06-03T09:00:00+08:00"), context=ctx())


def test_naive_datetime_is_refused_with_the_expected_format() -> None:
    err = only_error(SamplingResult, sampling(sampled_at="2026-03-01T10:00:00"))
    assert err.field == "sampled_at" and err.type == "timezone_aware"
    assert "must carry a UTC offset" in err.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sampled_at", 1772330400),
        ("sampled_at", 1772330400.5),
        ("sampled_at", "1772330400"),
        ("reported_at", 1772330400),
    ],
)
def test_a_unix_timestamp_is_not_an_iso_8601_date_time(field: str, value: Any) -> None:
    # DESIGN.md: dates are ISO 8601 with offset; the exported JSON Schema says a date-time string
    data = sampling(**{field: value})
    for decoded in (data, json.loads(json.dumps(data))):
        err = only_error(SamplingResult, decoded)
        assert err.field == field and err.type == "not_iso_date_time"
        assert "ISO 8601" in err.reason
    with pytest.raises(ValidationError):
        SamplingResult.model_validate_json(json.dumps(data), context=ctx())
    err = only_error(PatrolReport, patrol(patrolled_at=1772330400))
    assert err.field == "patrolled_at" and err.type == "not_iso_date_time"


def test_a_datetime_object_with_an_offset_is_still_accepted() -> None:
    when = datetime(2026, 3, 1, 10, tzinfo=CST)
    assert SamplingResult.model_validate(sampling(sampled_at=when), context=ctx()).sampled_at == when


def test_missing_fields_are_each_named() -> None:
    data = sampling(region=..., enterprise_id=..., inspector_id=...)
    errors = errors_of(SamplingResult, data)
    assert {(e.field, e.reason) for e in errors} == {
        ("region", "is required"),
        ("enterprise_id", "is required"),
        ("inspector_id", "is required"),
    }


@pytest.mark.parametrize(
    ("field", "value", "type_"),
    [
        ("passed", "maybe", "bool_type"),
        ("sampled_at", "last tuesday", "datetime_from_date_parsing"),
        ("failed_items", "formaldehyde", "list_type"),
        ("region", 653022, "string_type"),
        ("source", "rumour", "enum"),
    ],
)
def test_mistyped_fields(field: str, value: Any, type_: str) -> None:
    err = only_error(SamplingResult, sampling(**{field: value}))
    assert err.field == field and err.type == type_
    assert err.reason


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("true", "the string 'true'"),
        ("false", "the string 'false'"),
        (1, "the number 1"),
        ("是", "the string '是'"),
    ],
)
def test_passed_must_be_a_json_boolean_not_a_look_alike(value: Any, shown: str) -> None:
    # "false" read as a pass, or 1 as a pass, would decide a batch's conclusion by guesswork: the
    # wire contract says bool, and a sender that writes a string has a bug worth hearing about
    for as_json in (False, True):
        err = only_error(SamplingResult, sampling(passed=value), as_json=as_json)
        assert (err.field, err.type) == ("passed", "bool_type")
        assert err.reason == f"must be true or false, not {shown}"


@pytest.mark.parametrize("field", ["value", "limit"])
def test_a_test_item_value_or_limit_must_be_a_number_not_text(field: str) -> None:
    item: dict[str, Any] = {"name": "ph", "value": 6.9, "limit": 7.5, field: "7.2"}
    for as_json in (False, True):
        err = only_error(SamplingResult, sampling(test_items=[item]), as_json=as_json)
        assert (err.field, err.type) == (f"test_items.0.{field}", "float_type")
        assert err.reason == "must be a number, not the string '7.2'"
    whole = dict(item, **{field: 7})  # a whole number is a number
    assert SamplingResult.model_validate(sampling(test_items=[whole]), context=ctx()).test_items


def test_a_test_items_passed_must_be_a_json_boolean() -> None:
    item = {"name": "ph", "value": 6.9, "limit": 7.5, "passed": "yes"}
    err = only_error(SamplingResult, sampling(test_items=[item]))
    assert (err.field, err.type) == ("test_items.0.passed", "bool_type")


def test_a_record_id_typed_in_full_width_characters_is_stored_half_width() -> None:
    # a Chinese input method types ＳＨ－０１; a lab sheet, a Kafka producer or a replay file says SH-01:
    # the same record, so the same id (and never counted twice)
    for model, data in ((SamplingResult, sampling(id="ＳＨ－０１")), (PatrolReport, patrol(id="ＳＨ－０１"))):
        assert model.model_validate(data, context=ctx()).id == "SH-01"
    decode = SamplingDecoder(default_catalogue(), now=NOW)  # the replay's short cut agrees
    assert decode(json.dumps(sampling(id="ＳＨ－０１")).encode()).id == "SH-01"


def test_extra_fields_are_refused() -> None:
    err = only_error(SamplingResult, sampling(colour="red"))
    assert err.field == "colour" and err.reason == "is not a field of this record"


def test_blank_text_fields_are_refused() -> None:
    err = only_error(SamplingResult, sampling(inspector_id="   "))
    assert err.field == "inspector_id" and err.reason == "must not be blank"


@pytest.mark.parametrize("rid", ["S-1\x00", "S\x00-1", "S-1\nS-2", "S\t1", "S-1\x7f", "S-\x851"])
@pytest.mark.parametrize("model", [SamplingResult, PatrolReport])
def test_a_record_id_holding_a_control_character_is_refused(
    model: type[SamplingResult] | type[PatrolReport], rid: str
) -> None:
    # PostgreSQL stores no NUL in text, and an id is a key in every store and message downstream
    data = sampling(id=rid) if model is SamplingResult else patrol(id=rid)
    for as_json in (False, True):
        (err,) = errors_of(model, data, as_json=as_json)
        assert (err.field, err.type) == ("id", "control_character")
        assert "control character" in err.reason and "U+00" in err.reason
    if model is SamplingResult:  # the replay's short cut refuses it the same way
        with pytest.raises(ValidationError):
            SamplingDecoder(default_catalogue(), now=NOW)(json.dumps(data))


_TEXT_FIELDS = [
    (SamplingResult, "enterprise_name", lambda v: sampling(enterprise_name=v), "enterprise_name"),
    (SamplingResult, "product", lambda v: sampling(product=v), "product"),
    (SamplingResult, "inspector_id", lambda v: sampling(inspector_id=v), "inspector_id"),
    (SamplingResult, "lab_id", lambda v: sampling(lab_id=v), "lab_id"),
    (
        SamplingResult,
        "failed_items",
        lambda v: sampling(passed=False, failed_items=["lead", v]),
        "failed_items.1",
    ),
    (
        SamplingResult,
        "test item name",
        lambda v: sampling(test_items=[{"name": v, "value": 1.0}]),
        "test_items.0.name",
    ),
    (
        SamplingResult,
        "test item unit",
        lambda v: sampling(test_items=[{"name": "lead", "unit": v}]),
        "test_items.0.unit",
    ),
    (PatrolReport, "hazard", lambda v: patrol(hazard=v), "hazard"),
    (PatrolReport, "inspector_id", lambda v: patrol(inspector_id=v), "inspector_id"),
    (PatrolReport, "note", lambda v: patrol(note=v), "note"),
]


@pytest.mark.parametrize("text", ["某\x00厂", "a\x00", "a\x1bb", "a\x07b", "a\x7fb"])
@pytest.mark.parametrize(("model", "label", "make", "field"), _TEXT_FIELDS, ids=[f[1] for f in _TEXT_FIELDS])
def test_a_text_holding_a_control_character_is_refused_naming_the_field(
    model: type[SamplingResult] | type[PatrolReport], label: str, make: Any, field: str, text: str
) -> None:
    # such text reaches warnings (an enterprise's name is its label), which refuse NUL, and
    # PostgreSQL stores no NUL in text: the record is refused here rather than its warning lost
    data = make(text)
    for as_json in (False, True):
        (err,) = errors_of(model, data, as_json=as_json)
        assert (err.field, err.type) == (field, "control_character"), label
        assert f"U+{ord(text[1]):04X}" in err.reason
    if model is SamplingResult:  # the replay's short cut refuses it the same way
        with pytest.raises(ValidationError):
            SamplingDecoder(default_catalogue(), now=NOW)(json.dumps(data))


@pytest.mark.parametrize("text", ["a\tb", "a\nb", "a\r\nb"])
@pytest.mark.parametrize(
    ("model", "label", "make", "field"), _TEXT_FIELDS[:-1], ids=[f[1] for f in _TEXT_FIELDS[:-1]]
)
def test_a_single_line_text_refuses_tabs_and_line_breaks_inside(
    model: type[SamplingResult] | type[PatrolReport], label: str, make: Any, field: str, text: str
) -> None:
    (err,) = errors_of(model, make(text))
    assert (err.field, err.type) == (field, "control_character"), label


def test_a_patrol_note_may_hold_tabs_and_line_breaks_but_no_other_control_character() -> None:
    # a note is free text: several lines typed in the field app or wrapped in a spreadsheet cell
    note = "门口堆放杂物\n消防通道\t堵塞\r\n已告知"
    assert PatrolReport.model_validate(patrol(note=note), context=ctx()).note == note
    (err,) = errors_of(PatrolReport, patrol(note="ok\x00"))
    assert (err.field, err.type) == ("note", "control_character") and "U+0000" in err.reason


def test_reported_before_sampled() -> None:
    err = only_error(SamplingResult, sampling(reported_at="2026-03-01T09:00:00+08:00"))
    assert err.field == "reported_at" and err.type == "reported_before_sampled"
    assert "earlier than sampled_at" in err.reason
    ok = SamplingResult.model_validate(sampling(reported_at="2026-03-01T18:00:00+08:00"), context=ctx())
    assert ok.reported_at is not None and ok.reported_at > ok.sampled_at


def test_a_failed_test_item_must_be_listed_in_failed_items() -> None:
    items = [
        {"name": "甲醛", "value": 120.0, "limit": 75.0, "unit": "mg/kg", "passed": False},
        {"name": "pH值", "value": 6.9, "limit": 7.5, "unit": "pH", "passed": True},
    ]
    err = only_error(SamplingResult, sampling(passed=False, failed_items=["ph"], test_items=items))
    assert err.field == "test_items" and err.type == "failed_item_unlisted"
    assert "'formaldehyde' failed but is not listed" in err.reason
    rec = SamplingResult.model_validate(
        sampling(passed=False, failed_items=["Formaldehyde content"], test_items=items), context=ctx()
    )
    assert rec.test_items is not None and [t.name for t in rec.test_items] == ["formaldehyde", "ph"]


def test_errors_inside_lists_name_the_index() -> None:
    items = [{"name": "ph", "value": "acidic"}]
    err = only_error(SamplingResult, sampling(test_items=items))
    assert err.field == "test_items.0.value" and err.type == "float_type"


def test_several_errors_are_all_reported() -> None:
    errors = errors_of(SamplingResult, sampling(region="1", industry="x", enterprise_id="12"))
    assert [e.field for e in errors] == ["region", "industry", "enterprise_id"]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("甲醛", "formaldehyde"),
        ("  FORMALDEHYDE ", "formaldehyde"),
        ("free   formaldehyde", "formaldehyde"),
        ("Aflatoxin  B₁", "aflatoxin_b1"),
        ("黄曲霉毒素B1", "aflatoxin_b1"),
        ("AFB1", "aflatoxin_b1"),
        ("铅（以Pb计）", "lead"),
        ("pH值", "ph"),
        ("Sulphur Dioxide", "sulfur_dioxide"),
    ],
)
def test_failed_items_are_normalised_from_case_spacing_and_aliases(raw: str, canonical: str) -> None:
    rec = SamplingResult.model_validate(sampling(passed=False, failed_items=[raw]), context=ctx())
    assert rec.failed_items == [canonical]


def test_failed_items_spelled_twice_count_once() -> None:
    rec = SamplingResult.model_validate(
        sampling(passed=False, failed_items=["甲醛", "Formaldehyde", "pH", "ph value"]), context=ctx()
    )
    assert rec.failed_items == ["formaldehyde", "ph"]


def test_an_unknown_hazard_item_is_accepted_and_kept_normalised() -> None:
    rec = SamplingResult.model_validate(
        sampling(industry="food_processing", passed=False, failed_items=["Ethylene  Oxide", "lead"]),
        context=ctx(),
    )
    assert rec.failed_items == ["ethylene_oxide", "lead"]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("水泥", "cement"),
        ("Portland  Cement", "cement"),
        ("CARPETS", "carpet"),
        ("烤馕", "naan"),
        ("Felt  Hat", "felt_hat"),
    ],
)
def test_product_is_normalised(raw: str, canonical: str) -> None:
    assert SamplingResult.model_validate(sampling(product=raw), context=ctx()).product == canonical


def test_records_are_immutable() -> None:
    rec = SamplingResult.model_validate(sampling(), context=ctx())
    with pytest.raises(ValidationError):
        rec.passed = False  # type: ignore[misc]


# -- patrol reports ---------------------------------------------------------------------------------


def test_a_valid_patrol_report_normalises_its_hazard() -> None:
    rep = PatrolReport.model_validate_json(json.dumps(patrol(), ensure_ascii=False), context=ctx())
    assert rep.hazard == "mould" and rep.severity == "major" and rep.action == "suspended"
    free = PatrolReport.model_validate(patrol(hazard="Blocked  Fire Exit"), context=ctx())
    assert free.hazard == "blocked_fire_exit"


@pytest.mark.parametrize(
    ("changes", "field", "type_"),
    [
        ({"region": "653099"}, "region", "unknown_region"),
        ({"industry": "mining"}, "industry", "unknown_industry"),
        ({"enterprise_id": USCC[:-1] + ("0" if USCC[-1] != "0" else "1")}, "enterprise_id", "invalid_uscc"),
        ({"severity": "catastrophic"}, "severity", "enum"),
        ({"action": "ignored"}, "action", "enum"),
        ({"patrolled_at": "2026-03-09T10:00:00+08:00"}, "patrolled_at", "in_future"),
        ({"patrolled_at": "2026-03-01T10:00:00"}, "patrolled_at", "timezone_aware"),
        ({"hazard": " "}, "hazard", "blank"),
        ({"hazard": ...}, "hazard", "missing"),
        ({"weather": "snow"}, "weather", "extra_forbidden"),
    ],
)
def test_patrol_report_refusals(changes: dict[str, Any], field: str, type_: str) -> None:
    err = only_error(PatrolReport, patrol(**changes))
    assert err.field == field and err.type == type_
    assert err.reason


def test_field_error_renders_field_and_reason() -> None:
    err = only_error(SamplingResult, sampling(region="1"))
    assert str(err).startswith("region: '1' is not a county code")
    assert err.as_dict()["field"] == "region"


@pytest.mark.parametrize("field", ["value", "limit"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_test_item_value_or_limit_must_be_finite(field: str, literal: str) -> None:
    # what Python's json.dumps writes for float("nan") and float("inf"): a number that measures nothing
    item = {"name": "ph", "value": 6.9, "limit": 7.5}
    text = json.dumps(sampling(test_items=[item]))
    text = text.replace(f'"{field}": {item[field]}', f'"{field}": {literal}')
    assert literal in text
    with pytest.raises(ValidationError) as caught:
        SamplingResult.model_validate_json(text, context=ctx())
    (err,) = field_errors(caught.value)
    assert err.field == f"test_items.0.{field}" and err.type == "finite_number"
    assert "finite" in err.reason
    decode = SamplingDecoder(default_catalogue(), now=NOW)  # the replay's short cut refuses it the same way
    with pytest.raises(ValidationError):
        decode(text.encode())


@pytest.mark.parametrize("reported", ["2026-03-09T12:00:00+08:00", "9999-12-31T23:59:59-12:00"])
def test_a_report_from_the_future_is_refused(reported: str) -> None:
    # a wrong clock or a typo; the second has no UTC equivalent at all
    err = only_error(SamplingResult, sampling(reported_at=reported))
    assert err.field == "reported_at" and err.type == "in_future" and "in the future" in err.reason
    decode = SamplingDecoder(default_catalogue(), now=NOW)  # the replay's short cut refuses it the same way
    with pytest.raises(ValidationError):
        decode(json.dumps(sampling(reported_at=reported)).encode())
