"""Inspectors' records: sampling (spot-check) results and risk-source patrol reports.

Field names are the wire contract (JSON). Catalogue-dependent checks read the catalogue and the
clock from the validation context::

    SamplingResult.model_validate(data, context={"catalogue": cat, "now": now})

Without a context the packaged default catalogue and the wall clock (UTC) are used. Every error
names the field and the reason (see :func:`schemas.errors.field_errors`).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from .catalogue import Catalogue, default_catalogue, normalise_text
from .uscc import uscc_problem

__all__ = [
    "MAX_AGE",
    "MAX_FUTURE_SKEW",
    "PatrolAction",
    "PatrolReport",
    "SamplingResult",
    "SamplingSource",
    "Severity",
    "TestItem",
    "validation_context",
]

#: A record may be stamped at most this far ahead of the validating clock (devices drift).
MAX_FUTURE_SKEW = timedelta(minutes=10)
#: Records older than this are implausible (a typo in the year, or an epoch default).
MAX_AGE = timedelta(days=3660)


class SamplingSource(StrEnum):
    supervision_sampling = "supervision_sampling"
    risk_monitoring = "risk_monitoring"
    special_campaign = "special_campaign"


class Severity(StrEnum):
    general = "general"  # 一般隐患
    major = "major"  # 重大隐患


class PatrolAction(StrEnum):
    rectified_on_site = "rectified_on_site"
    rectification_ordered = "rectification_ordered"
    suspended = "suspended"
    escalated = "escalated"


def validation_context(catalogue: Catalogue | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The context dict records are validated with (catalogue and an injectable clock)."""
    return {"catalogue": catalogue or default_catalogue(), "now": now}


def _catalogue(info: ValidationInfo) -> Catalogue:
    ctx = info.context or {}
    cat = ctx.get("catalogue")
    return cat if cat is not None else default_catalogue()


def _now(info: ValidationInfo) -> datetime:
    ctx = info.context or {}
    now = ctx.get("now")
    return now if now is not None else datetime.now(UTC)


def _non_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("blank", "must not be blank")
    return value


#: C0 and C1 control characters (NUL, tab, line breaks, DEL …)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: what a one-line text may not hold: the C0 control characters (NUL, tab, line breaks …) and DEL
LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
#: what free text (a patrol's note) may not hold: the same, except tab and line breaks
TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _refuse(found: re.Match[str] | None) -> None:
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain a control character; found U+{code} at character {position}",
            {"code": f"{ord(found[0]):04X}", "position": found.start() + 1},
        )


def _no_control_characters(value: str) -> str:
    _refuse(CONTROL_CHARACTERS.search(value))
    return value


def _one_line(value: str | None) -> str | None:
    # text reaches warnings (an enterprise's name is its label) and the stores: PostgreSQL and the
    # alert service refuse NUL, and a line break in a name is a copy-paste accident
    if value is not None and not value.isprintable():  # the test alone is cheaper than the search
        _refuse(LINE_CONTROLS.search(value))
    return value


def _free_text(value: str) -> str:
    if not value.isprintable():
        _refuse(TEXT_CONTROLS.search(value))
    return value


_ONE_LINE_SCHEMA = {"pattern": "^[^\\u0000-\\u001f\\u007f]*$"}
_FREE_TEXT_SCHEMA = {"pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"}

#: a one-line text that must not be blank (a name: product, inspector, hazard, test item)
NonBlank = Annotated[
    str, Field(json_schema_extra=_ONE_LINE_SCHEMA), AfterValidator(_non_blank), AfterValidator(_one_line)
]
#: a free text: tab and line breaks allowed, other control characters (NUL …) not
FreeText = Annotated[str, Field(json_schema_extra=_FREE_TEXT_SCHEMA), AfterValidator(_free_text)]

_MAX_ID = 128


def _half_width(value: str) -> str:
    """The id with full-width letters, digits and signs as their half-width forms (NFKC)."""
    if value.isascii():
        return value
    value = unicodedata.normalize("NFKC", value).strip()
    if len(value) > _MAX_ID:  # a compatibility character can stand for several (㍿ is 株式会社)
        raise PydanticCustomError(
            "string_too_long",
            "must have at most {max_length} characters once written half-width (has {length})",
            {"max_length": _MAX_ID, "length": len(value)},
        )
    return value


#: a record id: a key in the outbox, on the topics and in warnings' evidence. Half-width (NFKC): a
#: Chinese input method types ＳＨ－０１ where a lab sheet or a producer says SH-01, and the two are one
#: record, counted once. No control characters: PostgreSQL stores no NUL in text, and a tab or line
#: break in a key is a copy-paste accident
RecordId = Annotated[
    str,
    Field(max_length=_MAX_ID, json_schema_extra={"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}),
    AfterValidator(_non_blank),
    AfterValidator(_half_width),
    AfterValidator(_no_control_characters),
]


def _none_if_empty(value: str | None) -> str | None:
    return value or None


#: an optional text: empty (after stripping) is the same as absent, so a spreadsheet's blank cell and a
#: field app's ``""`` or ``null`` give the same record (and the same content hash at ingest)
OptionalText = Annotated[
    str | None,
    Field(json_schema_extra={"anyOf": [{"type": "string", **_ONE_LINE_SCHEMA}, {"type": "null"}]}),
    AfterValidator(_none_if_empty),
    AfterValidator(_one_line),
]
#: a one-line text in a list (a failed item's name); blank entries are refused by the list's validator
LineText = Annotated[str, Field(json_schema_extra=_ONE_LINE_SCHEMA), AfterValidator(_one_line)]


#: a number, or a text that is only one: pydantic would read it as seconds since 1970
_NUMERIC = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_date_time(value: Any) -> Any:
    """Refuse a Unix timestamp where the wire contract asks for an ISO 8601 date-time with offset."""
    if (isinstance(value, int | float) and not isinstance(value, bool)) or (
        isinstance(value, str) and _NUMERIC.fullmatch(value)
    ):
        raise PydanticCustomError(
            "not_iso_date_time",
            "{value} is a number, not an ISO 8601 date-time with offset (e.g. 2026-03-02T10:30:00+08:00)",
            {"value": repr(value)},
        )
    return value


#: an ISO 8601 date-time with offset, as JSON text or a timezone-aware ``datetime`` (never a number)
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_date_time)]


def _not_in_future(value: datetime, info: ValidationInfo) -> datetime:
    """The validating clock, once ``value`` is found no later than it (beyond the allowed skew)."""
    now = _now(info)
    if value > now + MAX_FUTURE_SKEW:
        raise PydanticCustomError(
            "in_future",
            "{when} is in the future (validating clock {now})",
            {"when": value.isoformat(), "now": now.isoformat(timespec="seconds")},
        )
    return now


def _check_event_time(value: datetime, info: ValidationInfo) -> datetime:
    now = _not_in_future(value, info)
    if value < now - MAX_AGE:
        raise PydanticCustomError(
            "implausibly_old",
            "{when} is implausibly old (more than {days} days before {now})",
            {"when": value.isoformat(), "days": MAX_AGE.days, "now": now.isoformat(timespec="seconds")},
        )
    return value


def _check_region(value: str, info: ValidationInfo) -> str:
    cat = _catalogue(info)
    if cat.region(value) is None:
        raise PydanticCustomError(
            "unknown_region",
            "'{value}' is not a county code of the {pref} catalogue (known: {known})",
            {"value": value, "pref": cat.prefecture_code, "known": ", ".join(cat.region_codes)},
        )
    return value


def _check_industry(value: str, info: ValidationInfo) -> str:
    cat = _catalogue(info)
    if cat.industry(value) is None:
        raise PydanticCustomError(
            "unknown_industry",
            "'{value}' is not an industry of the catalogue (known: {known})",
            {"value": value, "known": ", ".join(cat.industry_slugs)},
        )
    return value


def _check_enterprise(value: str) -> str:
    # NFKC: the full-width digits and letters of a Chinese input method are the same code
    code = unicodedata.normalize("NFKC", value).strip().upper()
    problem = uscc_problem(code)
    if problem is not None:
        raise PydanticCustomError(
            "invalid_uscc",
            "'{value}' is not a unified social credit code: {problem}",
            {"value": value, "problem": problem},
        )
    return code


EnterpriseId = Annotated[str, AfterValidator(_check_enterprise)]
#: a lab value or limit: a JSON number (a whole one too), finite. Strict, as ``passed`` is
#: (``StrictBool``): a string "7.2" or "true" is a sender's bug to report, not a value to guess at;
#: the spreadsheet import converts its cells itself before validating
Measurement = Annotated[float, Strict(), AllowInfNan(False)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TestItem(_Record):
    """One tested item of a batch: its value against its limit."""

    __test__ = False  # not a pytest class

    name: NonBlank
    #: finite: a lab value of NaN or Infinity (what ``json.dumps`` writes for them) measures nothing
    value: Measurement | None = None
    limit: Measurement | None = None
    unit: OptionalText = None
    passed: StrictBool | None = None

    @field_validator("name")
    @classmethod
    def _normalise_name(cls, value: str, info: ValidationInfo) -> str:
        return _catalogue(info).normalise_item(value)


#: the passed / failed_items rule in the exported JSON Schema: named items when failed, none when passed
_FAILED_ITEMS_RULE: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"passed": {"const": False}}, "required": ["passed"]},
            "then": {"properties": {"failed_items": {"minItems": 1}}, "required": ["failed_items"]},
        },
        {
            "if": {"properties": {"passed": {"const": True}}, "required": ["passed"]},
            "then": {"properties": {"failed_items": {"maxItems": 0}}},
        },
    ]
}


class SamplingResult(_Record):
    """One tested batch (监督抽查 / 风险监测 result)."""

    model_config = ConfigDict(json_schema_extra=_FAILED_ITEMS_RULE)

    id: RecordId
    sampled_at: IsoDateTime
    reported_at: IsoDateTime | None = None
    region: str
    industry: str
    product: NonBlank
    enterprise_id: EnterpriseId
    enterprise_name: OptionalText = None
    passed: StrictBool
    failed_items: list[LineText] = Field(default_factory=list, validate_default=True)
    test_items: list[TestItem] | None = None
    inspector_id: NonBlank
    lab_id: OptionalText = None
    source: SamplingSource = SamplingSource.supervision_sampling

    _event_time = field_validator("sampled_at")(_check_event_time)
    _region = field_validator("region")(_check_region)
    _industry = field_validator("industry")(_check_industry)

    @field_validator("product")
    @classmethod
    def _normalise_product(cls, value: str, info: ValidationInfo) -> str:
        return _catalogue(info).normalise_product(value)

    @field_validator("reported_at")
    @classmethod
    def _reported_after_sampling(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None:
            _not_in_future(value, info)  # a report from the future is a wrong clock (or a typo)
        sampled = info.data.get("sampled_at")
        if value is not None and sampled is not None and value < sampled:
            raise PydanticCustomError(
                "reported_before_sampled",
                "is earlier than sampled_at ({sampled})",
                {"sampled": sampled.isoformat()},
            )
        return value

    @field_validator("failed_items")
    @classmethod
    def _normalise_items(cls, value: list[str], info: ValidationInfo) -> list[str]:
        cat = _catalogue(info)
        out: list[str] = []
        for n, raw in enumerate(value):
            if not normalise_text(raw):
                raise PydanticCustomError("blank", "item {n} is blank", {"n": n})
            name = cat.normalise_item(raw)
            if name not in out:
                out.append(name)
        passed = info.data.get("passed")
        if passed is False and not out:
            raise PydanticCustomError(
                "failed_items_missing", "must name at least one hazard item when passed is false"
            )
        if passed is True and out:
            raise PydanticCustomError(
                "failed_items_on_pass",
                "must be empty when passed is true (got {items})",
                {"items": ", ".join(out)},
            )
        return out

    @field_validator("test_items")
    @classmethod
    def _test_items_agree(cls, value: list[TestItem] | None, info: ValidationInfo) -> list[TestItem] | None:
        listed = info.data.get("failed_items")
        if value and listed is not None:
            for item in value:
                if item.passed is False and item.name not in listed:
                    raise PydanticCustomError(
                        "failed_item_unlisted",
                        "test item '{name}' failed but is not listed in failed_items",
                        {"name": item.name},
                    )
        return value or None  # an empty list names no test: the same as absent


class PatrolReport(_Record):
    """One risk-source inspection patrol (风险源巡查)."""

    id: RecordId
    patrolled_at: IsoDateTime
    region: str
    industry: str
    enterprise_id: EnterpriseId
    inspector_id: NonBlank
    hazard: NonBlank
    severity: Severity
    action: PatrolAction
    #: free text: may hold tabs and line breaks (several lines typed or wrapped in a cell)
    note: FreeText = ""

    _event_time = field_validator("patrolled_at")(_check_event_time)
    _region = field_validator("region")(_check_region)
    _industry = field_validator("industry")(_check_industry)

    @field_validator("hazard")
    @classmethod
    def _normalise_hazard(cls, value: str, info: ValidationInfo) -> str:
        return _catalogue(info).normalise_item(value)
