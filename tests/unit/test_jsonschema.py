"""``qualitywatch schemas export DIR`` writes JSON Schema files that real records validate against."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from detectors import make_warning
from qualitywatch.cli import main
from schemas import Level, Scope, WarningKind, uscc_check_char

BODY = "91653001MA78QK4R5"
SAMPLING = {
    "id": "S-1",
    "sampled_at": "2026-03-01T10:00:00+08:00",
    "region": "653001",
    "industry": "food_processing",
    "product": "馕",
    "enterprise_id": BODY + uscc_check_char(BODY),
    "passed": False,
    "failed_items": ["黄曲霉毒素B1"],
    "test_items": [{"name": "AFB1", "value": 7.2, "limit": 5.0, "unit": "μg/kg", "passed": False}],
    "inspector_id": "INS-1",
    "source": "risk_monitoring",
}
PATROL = {
    "id": "P-1",
    "patrolled_at": "2026-03-01T10:00:00+08:00",
    "region": "653023",
    "industry": "building_materials",
    "enterprise_id": BODY + uscc_check_char(BODY),
    "inspector_id": "INS-2",
    "hazard": "cracked kiln",
    "severity": "general",
    "action": "rectification_ordered",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("schemas")
    result = CliRunner().invoke(main, ["schemas", "export", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["patrol-report.schema.json", "risk-warning.schema.json", "sampling-result.schema.json"]
    for name in files:
        assert str(out / name) in result.output
    return {
        p.name.removesuffix(".schema.json"): json.loads(p.read_text(encoding="utf-8")) for p in out.iterdir()
    }


def _warning() -> dict[str, Any]:
    when = datetime(2026, 3, 2, tzinfo=UTC)
    w = make_warning(
        detector="regional_rate",
        kind=WarningKind.regional,
        level=Level.orange,
        scope=Scope(region="653022"),
        raised_at=when,
        window_start=when,
        window_end=when,
        tested=40,
        failed=9,
        expected_rate=0.05,
        summary="Akto: 9 of 40 batches failed",
        statistic=4.2,
        threshold=3.0,
        record_ids=["S-1", "S-2"],
    )
    data: dict[str, Any] = json.loads(w.model_dump_json())
    return data


@pytest.mark.parametrize("name", ["sampling-result", "patrol-report", "risk-warning"])
def test_exported_files_are_valid_draft_2020_12_schemas(
    exported: dict[str, dict[str, Any]], name: str
) -> None:
    schema = exported[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:qualitywatch:{name}"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)


def test_required_fields_follow_the_wire_contract(exported: dict[str, dict[str, Any]]) -> None:
    assert set(exported["sampling-result"]["required"]) == {
        "id",
        "sampled_at",
        "region",
        "industry",
        "product",
        "enterprise_id",
        "passed",
        "inspector_id",
    }
    assert set(exported["sampling-result"]["properties"]) >= {
        "reported_at",
        "enterprise_name",
        "failed_items",
        "test_items",
        "lab_id",
        "source",
    }
    assert set(exported["patrol-report"]["required"]) == {
        "id",
        "patrolled_at",
        "region",
        "industry",
        "enterprise_id",
        "inspector_id",
        "hazard",
        "severity",
        "action",
    }
    assert set(exported["risk-warning"]["required"]) >= {
        "id",
        "fingerprint",
        "kind",
        "level",
        "scope",
        "detector",
        "raised_at",
        "window_start",
        "window_end",
        "evidence",
        "summary",
    }


@pytest.mark.parametrize(
    ("name", "record"), [("sampling-result", SAMPLING), ("patrol-report", PATROL), ("risk-warning", None)]
)
def test_sample_records_validate_and_broken_ones_do_not(
    exported: dict[str, dict[str, Any]], name: str, record: dict[str, Any] | None
) -> None:
    validator = jsonschema.Draft202012Validator(exported[name])
    data = dict(record) if record is not None else _warning()
    validator.validate(data)
    missing = {k: v for k, v in data.items() if k != "id"}
    assert any(e.validator == "required" for e in validator.iter_errors(missing))
    extra = dict(data, unexpected=1)
    assert any(e.validator == "additionalProperties" for e in validator.iter_errors(extra))


def test_enumerations_are_in_the_schema(exported: dict[str, dict[str, Any]]) -> None:
    validator = jsonschema.Draft202012Validator(exported["patrol-report"])
    assert not validator.is_valid(dict(PATROL, severity="catastrophic"))
    warning = jsonschema.Draft202012Validator(exported["risk-warning"])
    assert not warning.is_valid(dict(_warning(), level="purple"))


def test_the_passed_and_failed_items_rule_is_in_the_schema(exported: dict[str, dict[str, Any]]) -> None:
    # DESIGN.md: failed_items is empty when passed, must be non-empty when not passed
    validator = jsonschema.Draft202012Validator(exported["sampling-result"])
    passed = dict(SAMPLING, passed=True, failed_items=[])
    del passed["test_items"]
    assert validator.is_valid(passed)
    assert validator.is_valid({k: v for k, v in passed.items() if k != "failed_items"})
    assert not validator.is_valid(dict(passed, failed_items=["lead"]))
    assert not validator.is_valid(dict(SAMPLING, failed_items=[]))
    assert not validator.is_valid({k: v for k, v in SAMPLING.items() if k != "failed_items"})


def test_export_into_a_new_nested_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    result = CliRunner().invoke(main, ["schemas", "export", str(target)])
    assert result.exit_code == 0, result.output
    assert len(list(target.glob("*.schema.json"))) == 3


def test_export_into_a_path_that_cannot_be_a_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    target = tmp_path / "a-file" / "schemas"
    result = CliRunner().invoke(main, ["schemas", "export", str(target)])
    assert result.exit_code == 1, result.output
    assert f"Error: cannot write {target}: Not a directory" in result.output
