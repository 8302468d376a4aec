"""The reference catalogue: the packaged Kizilsu data, another prefecture's file, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from schemas import CatalogueError, SamplingResult, default_catalogue, field_errors, load_catalogue
from schemas import validation_context as vctx

KASHGAR = """
prefecture: {code: "653100", name_zh: 喀什地区, name_en: Kashgar Prefecture}
timezone: Asia/Shanghai
targets: {industrial: 0.90, food_agri: 0.97}
regions:
  - {code: "653101", name_zh: 喀什市, name_en: Kashgar City, aliases: [Kashi]}
  - {code: "653121", name_zh: 疏附县, name_en: Shufu County}
industries:
  - {slug: dried_fruit, name_zh: 干果, name_en: Dried fruit, category: food_agri,
     hazard_items: [sulfur_dioxide]}
  - {slug: carpets, name_zh: 地毯, name_en: Carpets, category: industrial, hazard_items: [formaldehyde]}
hazard_items:
  sulfur_dioxide: {name_zh: 二氧化硫, name_en: Sulfur dioxide, aliases: [SO2]}
  formaldehyde: {name_zh: 甲醛, name_en: Formaldehyde}
"""


def test_default_catalogue_is_kizilsu_with_its_four_counties() -> None:
    cat = default_catalogue()
    assert cat.prefecture_code == "653000"
    assert cat.prefecture_name_zh == "克孜勒苏柯尔克孜自治州"
    assert {r.code: r.name_zh for r in cat.regions} == {
        "653001": "阿图什市",
        "653022": "阿克陶县",
        "653023": "阿合奇县",
        "653024": "乌恰县",
    }
    assert all(r.name_en for r in cat.regions)
    assert cat.resolve_region("Akto") == "653022" and cat.resolve_region("乌恰") == "653024"
    assert cat.resolve_region("Kashgar") is None
    assert str(cat.zone) == "Asia/Shanghai"


def test_default_catalogue_industries_items_and_policy_targets() -> None:
    cat = default_catalogue()
    slugs = set(cat.industry_slugs)
    assert {"building_materials", "textiles", "food_processing", "agricultural_processing"} <= slugs
    assert dict(cat.targets) == {"industrial": 0.92, "food_agri": 0.96}
    assert cat.target_for_industry("textiles") == 0.92
    assert cat.target_for_industry("building_materials") == 0.92
    assert cat.target_for_industry("food_processing") == 0.96
    assert cat.target_for_industry("agricultural_processing") == 0.96
    assert {"formaldehyde", "ph"} <= set(cat.items_for_industry("textiles"))
    assert {"aflatoxin_b1", "lead"} <= set(cat.items_for_industry("food_processing"))
    assert "compressive_strength" in cat.items_for_industry("building_materials")
    assert cat.resolve_industry("纺织服装") == "textiles"
    assert cat.is_known_item("formaldehyde") and not cat.is_known_item("ethylene_oxide")
    with pytest.raises(KeyError):
        cat.target_for_industry("aerospace")


def test_default_catalogue_is_loaded_once() -> None:
    assert default_catalogue() is default_catalogue() is load_catalogue()


def test_another_prefecture_brings_its_own_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "kashgar.yaml"
    path.write_text(KASHGAR, encoding="utf-8")
    cat = load_catalogue(path)
    assert cat.prefecture_code == "653100"
    assert cat.region_codes == ("653101", "653121")
    assert cat.target_for_industry("dried_fruit") == 0.97 and cat.target_for_industry("carpets") == 0.90
    assert cat.normalise_item("SO2") == "sulfur_dioxide"

    record: dict[str, Any] = {
        "id": "K-1",
        "sampled_at": "2026-03-01T10:00:00+08:00",
        "region": "653101",
        "industry": "dried_fruit",
        "product": "raisins",
        "enterprise_id": "91653100MA7AB2CD3X",
        "passed": False,
        "failed_items": ["SO2"],
        "inspector_id": "K-INS-1",
    }
    from schemas import uscc_check_char

    record["enterprise_id"] = record["enterprise_id"][:17] + uscc_check_char(record["enterprise_id"][:17])
    rec = SamplingResult.model_validate(record, context=vctx(catalogue=cat))
    assert rec.failed_items == ["sulfur_dioxide"]
    # the same record is not a Kizilsu record
    with pytest.raises(ValidationError) as info:
        SamplingResult.model_validate(record, context=vctx())
    assert {e.field for e in field_errors(info.value)} == {"region", "industry"}


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "cat.yaml"
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )
    return path


def _kashgar() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(KASHGAR)
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("regions"), "catalogue: missing key 'regions'"),
        (lambda d: d["regions"][1].pop("code"), "regions[1]: missing key 'code'"),
        (lambda d: d["industries"][0].pop("category"), "industries[0]: missing key 'category'"),
        (
            lambda d: d["hazard_items"]["formaldehyde"].pop("name_en"),
            "hazard_items.formaldehyde: missing key 'name_en'",
        ),
        (
            lambda d: d["industries"][1]["hazard_items"].append("asbestos"),
            "industries.carpets: hazard item 'asbestos' is not in hazard_items",
        ),
        (lambda d: d["targets"].update(industrial=92), "targets.industrial: 92.0 is not a pass rate"),
        (lambda d: d["targets"].pop("food_agri"), "category 'food_agri' has no policy target"),
        (lambda d: d["targets"].update(industrial=1.2), "targets.industrial: 1.2 is not a pass rate"),
        (lambda d: d["targets"].update(industrial="92%"), "targets.industrial: '92%' is not a pass rate"),
        (lambda d: d.update(targets=None), "targets: must be a mapping, not null"),
        (
            lambda d: d["regions"].append(dict(d["regions"][0], name_en="Kashgar again")),
            "regions[2].code: region code '653101' is listed twice (also regions[0].code)",
        ),
        (
            lambda d: d["regions"][1].update(aliases=["Shufu", "kashi"]),
            "regions[1].aliases[1]: 'kashi' also names regions[0].aliases[0] (county 653101)",
        ),
        (
            lambda d: d["regions"][1].update(aliases=["Kashgar  city"]),
            "regions[1].aliases[0]: 'Kashgar  city' also names regions[0].name_en (county 653101)",
        ),
        (
            lambda d: d["regions"][0].update(aliases=["Kashi", "疏附县"]),
            "regions[1].name_zh: '疏附县' also names regions[0].aliases[1] (county 653101)",
        ),
        (
            lambda d: d["industries"].append(dict(d["industries"][1])),
            "industries[2].slug: industry slug 'carpets' is listed twice (also industries[1].slug)",
        ),
        (lambda d: d.update(regions=[]), "regions: must not be empty"),
        (lambda d: d.update(regions={"653101": "Kashgar"}), "regions: must be a list, not a mapping"),
        (
            lambda d: d["regions"][0].update(aliases="Kashi"),
            "regions[0].aliases: must be a list, not 'Kashi'",
        ),
        (
            lambda d: d["regions"][1].update(name_en=None),
            "regions[1].name_en: must be a non-empty text, not null",
        ),
        (
            lambda d: d["hazard_items"].update(formaldehyde=None),
            "hazard_items.formaldehyde: must be a mapping",
        ),
        (
            lambda d: d.update(timezone="Asia/Kashgar_City"),
            "timezone: 'Asia/Kashgar_City' is not a known time zone",
        ),
    ],
)
def test_malformed_catalogue_is_refused_with_a_clear_error(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _kashgar()
    mutate(data)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(_write(tmp_path, data))
    assert message in str(info.value)


def test_unreadable_or_invalid_yaml_catalogue(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        load_catalogue(tmp_path / "missing.yaml")
    with pytest.raises(CatalogueError, match="is not valid YAML"):
        load_catalogue(_write(tmp_path, "regions: [unclosed\n"))
    (tmp_path / "list").mkdir()
    with pytest.raises(CatalogueError, match="top level must be a mapping"):
        load_catalogue(_write(tmp_path / "list", "- just\n- a list\n"))


def test_a_catalogue_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes(KASHGAR.encode("gbk"))
    with pytest.raises(CatalogueError, match=f"catalogue {path} is not UTF-8 text"):
        load_catalogue(path)
