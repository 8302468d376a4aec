"""The dashboard's JSON helpers (``/api/stats/*``) and the page's packaged assets, without a browser."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

import alerts.dashboard

AKTO, WUQIA = "653022", "653024"
#: Monday 00:00 in Asia/Shanghai, written in UTC
W0 = datetime(2026, 1, 4, 16, 0, tzinfo=UTC)


def cell(region: str, industry: str, k: int, tested: int, failed: int, **items: int) -> dict[str, Any]:
    start = W0 + timedelta(weeks=k)
    return {
        "region": region,
        "industry": industry,
        "week_start": start.isoformat(),
        "week_end": (start + timedelta(weeks=1)).isoformat(),
        "tested": tested,
        "failed": failed,
        "item_failures": items,
    }


def post_cells(client: TestClient, headers: dict[str, str], *cells: dict[str, Any]) -> Any:
    return client.post("/api/stats/cell-weeks", json={"cells": list(cells)}, headers=headers)


def test_cell_weeks_upsert_and_grid(
    client: TestClient, token: Callable[..., dict[str, str]], ingest: Callable[..., Any], make_warning: Any
) -> None:
    admin = token("admin")
    r = post_cells(client, admin, cell(AKTO, "textiles", 0, 40, 2), cell(AKTO, "textiles", 1, 40, 9))
    assert r.status_code == 202 and r.json() == {"recorded": 2}
    # a redelivered week replaces its figures instead of adding to them
    assert post_cells(client, admin, cell(AKTO, "textiles", 1, 50, 10)).status_code == 202
    ingest(
        make_warning(region=AKTO, level="orange"),
        make_warning(region=None, industry="textiles", kind="industry"),
    )

    g = client.get("/api/stats/grid?weeks=4", headers=token("duty_officer")).json()
    assert g["counties"] == ["653001", AKTO, "653023", WUQIA]
    assert len(g["cells"]) == 4 * 8
    cells = {(c["county"], c["industry"]): c for c in g["cells"]}
    textiles = cells[(AKTO, "textiles")]
    assert (textiles["tested"], textiles["failed"]) == (90, 12)
    assert textiles["pass_rate"] == 78 / 90 and textiles["target"] == 0.92 and textiles["below_target"]
    assert textiles["level"] == "orange"  # the county's orange beats the industry's yellow
    assert cells[(AKTO, "food_processing")]["level"] == "orange"
    assert cells[(WUQIA, "textiles")]["level"] == "yellow"  # only the prefecture-wide textiles alert
    assert cells[(WUQIA, "food_processing")]["level"] is None
    assert cells[(WUQIA, "food_processing")]["pass_rate"] is None
    assert g["county_levels"] == {AKTO: "orange"} and g["industry_levels"] == {"textiles": "yellow"}


def test_bad_cell_weeks_are_refused_with_the_field(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    admin = token("admin")
    r = post_cells(client, admin, cell(AKTO, "textiles", 0, 10, 1), cell("999999", "textiles", 0, 10, 1))
    assert r.status_code == 422 and r.json()["error"]["field"] == "cells[1].region"
    r = post_cells(client, admin, cell(AKTO, "textiles", 0, 10, 11))
    assert r.status_code == 422 and r.json()["error"]["field"] == "cells[0].failed"
    r = post_cells(client, admin, cell(AKTO, "knitting", 0, 10, 1))
    assert r.status_code == 422 and r.json()["error"]["field"] == "cells[0].industry"
    assert post_cells(client, token("duty_officer"), cell(AKTO, "textiles", 0, 10, 1)).status_code == 403
    assert post_cells(client, {}, cell(AKTO, "textiles", 0, 10, 1)).status_code == 401
    # nothing of a refused batch was kept
    g = client.get("/api/stats/grid", headers=admin).json()
    assert all(c["tested"] == 0 for c in g["cells"])


def test_series_has_band_and_the_points_that_fired(
    client: TestClient, token: Callable[..., dict[str, str]], ingest: Callable[..., Any], make_warning: Any
) -> None:
    admin = token("admin")
    weeks = [cell(AKTO, "textiles", k, 40, 2) for k in range(8)] + [cell(AKTO, "food_processing", 8, 40, 12)]
    post_cells(client, admin, *weeks)
    fired_week = W0 + timedelta(weeks=8)
    w = make_warning(region=AKTO, level="red", raised_at=fired_week + timedelta(days=6), week=0)
    w = w.model_copy(update={"window_start": fired_week, "window_end": fired_week + timedelta(weeks=1)})
    ingest(w)

    s = client.get(f"/api/stats/series?county={AKTO}", headers=token("inspector")).json()
    assert len(s["points"]) == 9
    first, quiet, hot = s["points"][0], s["points"][7], s["points"][8]
    assert first["expected_rate"] is None and first["band_low"] is None  # no history yet
    assert quiet["expected_source"] == "trailing" and quiet["expected_rate"] == 0.05
    assert quiet["band_low"] < 0.05 < quiet["band_high"]
    assert hot["failure_rate"] == 0.3 and hot["expected_source"] == "detector"
    assert hot["expected_rate"] == 0.05 and hot["band_high"] < 0.3
    assert [f["level"] for f in s["fired"]] == ["red"]
    assert s["fired"][0]["window_end"] == hot["week_end"]
    assert s["fired"][0]["evidence"]["statistic"] == 5.1

    cellseries = client.get(f"/api/stats/series?county={AKTO}&industry=textiles", headers=admin).json()
    assert cellseries["target"] == 0.92 and len(cellseries["points"]) == 8 and cellseries["fired"] == []
    item = client.get(f"/api/stats/series?county={AKTO}&industry=textiles&item=formaldehyde", headers=admin)
    assert item.status_code == 200
    assert client.get("/api/stats/series", headers=admin).status_code == 422


def test_pass_rates_json_and_csv(client: TestClient, token: Callable[..., dict[str, str]]) -> None:
    admin = token("admin")
    post_cells(
        client,
        admin,
        cell(AKTO, "textiles", 0, 100, 5),  # January: 95 % >= 92 %
        cell(AKTO, "food_processing", 0, 100, 5),  # 95 % < 96 %
        cell(AKTO, "textiles", 5, 50, 10),  # February: 80 %
    )
    rows = client.get("/api/stats/pass-rates?period=month&by=county", headers=admin).json()["rows"]
    rows = [r for r in rows if r["tested"]]  # the other counties are listed with 0 tested
    assert [(r["period"], r["county"], r["tested"], r["failed"]) for r in rows] == [
        ("2026-01", AKTO, 200, 10),
        ("2026-02", AKTO, 50, 10),
    ]
    assert rows[0]["target"] == (0.92 * 100 + 0.96 * 100) / 200 and rows[0]["met"] is True
    assert rows[1]["met"] is False

    r = client.get("/api/stats/pass-rates?period=quarter&format=csv&lang=en", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {(t["period"], t["county"], t["industry"], t["met"]) for t in table if t["tested"] != "0"} == {
        ("2026-Q1", AKTO, "textiles", "no"),
        ("2026-Q1", AKTO, "food_processing", "no"),
    }
    chinese = client.get("/api/stats/pass-rates?period=quarter&format=csv&lang=zh-CN", headers=admin).text
    table = list(csv.DictReader(io.StringIO(chinese.lstrip("\ufeff"))))
    assert {(t["县市"], t["行业"], t["是否达标"]) for t in table if t["抽检批次"] != "0"} == {
        ("阿克陶县", "纺织服装", "否"),
        ("阿克陶县", "食品加工", "否"),
    }
    english = client.get("/api/stats/pass-rates?format=csv&lang=en&by=industry", headers=admin).text
    assert "Textiles and apparel" in english


def test_county_scope_limits_statistics(client: TestClient, token: Callable[..., dict[str, str]]) -> None:
    admin = token("admin")
    post_cells(client, admin, cell(AKTO, "textiles", 0, 10, 1), cell(WUQIA, "textiles", 0, 10, 1))
    akto = token("duty_officer", county=AKTO)
    g = client.get("/api/stats/grid", headers=akto).json()
    assert g["counties"] == [AKTO] and {c["county"] for c in g["cells"]} == {AKTO}
    rows = client.get("/api/stats/pass-rates?by=county", headers=akto).json()["rows"]
    assert {r["county"] for r in rows} == {AKTO}
    for path in (f"/api/stats/series?county={WUQIA}", f"/api/stats/pass-rates?county={WUQIA}"):
        r = client.get(path, headers=akto)
        assert r.status_code == 403 and r.json()["error"]["field"] == "county"
    assert client.get("/api/stats/grid").status_code == 401


def test_page_and_assets_ship_with_the_package(client: TestClient) -> None:
    page = client.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    static = Path(alerts.dashboard.__file__).with_name("static")
    refs = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert refs and all(ref.startswith("/dashboard/static/") for ref in refs), refs
    for ref in refs:
        r = client.get(ref)
        assert r.status_code == 200, ref
    js = client.get("/dashboard/static/js/main.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert (static / "vendor" / "echarts.min.js").stat().st_size > 500_000
    assert "Apache License" in (static / "vendor" / "echarts.LICENSE").read_text(encoding="utf-8")
    # nothing is fetched from elsewhere at run time
    for path in [*static.glob("*.html"), *static.glob("*.css"), *static.glob("js/*.js")]:
        assert not re.search(r"https?://", path.read_text(encoding="utf-8")), path.name
    # the page names its icon, and a browser that asks for /favicon.ico anyway gets the same one
    assert '<link rel="icon" href="/dashboard/static/favicon.svg" type="image/svg+xml">' in page.text
    icon = (static / "favicon.svg").read_bytes()
    for path in ("/dashboard/static/favicon.svg", "/favicon.ico"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml"), path
        assert r.content == icon, path
    assert client.get("/dashboard/static/%2e%2e/views.py").status_code == 404
    assert client.get("/dashboard/static/nothing.js").status_code == 404


def test_strings_exist_in_both_languages() -> None:
    import json

    static = Path(alerts.dashboard.__file__).with_name("static")
    zh = json.loads((static / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    en = json.loads((static / "i18n" / "en.json").read_text(encoding="utf-8"))
    assert zh.keys() == en.keys()
    used = set()
    for path in static.glob("js/*.js"):
        used |= set(re.findall(r'\bt\("([a-zA-Z.]+)"', path.read_text(encoding="utf-8")))
    assert used and used <= zh.keys(), sorted(used - zh.keys())


def test_pass_rate_csv_speaks_the_asked_language_and_lists_every_cell(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    admin = token("admin")
    post_cells(client, admin, cell(AKTO, "textiles", 0, 100, 5), cell(WUQIA, "food_processing", 0, 100, 5))
    cat = client.get("/api/stats/catalogue", headers=admin).json()
    every = {(c["code"], i["slug"]) for c in cat["counties"] for i in cat["industries"]}

    text = client.get("/api/stats/pass-rates?format=csv&lang=zh-CN", headers=admin).text.lstrip("\ufeff")
    header, *body = list(csv.reader(io.StringIO(text)))
    names = ["周期", "县市代码", "县市", "行业代码", "行业", "抽检批次", "不合格批次", "合格率"]
    assert header == [*names, "目标合格率", "是否达标"]
    assert {r[0] for r in body} == {"2026-01"}
    assert {(r[1], r[3]) for r in body} == every and len(body) == len(every)
    by_cell = {(r[1], r[3]): r for r in body}
    assert by_cell[(AKTO, "textiles")][5:] == ["100", "5", "0.9500", "0.9200", "是"]
    assert by_cell[(WUQIA, "food_processing")][9] == "否"
    # a cell without tests in the period: 0 tested, no rate and no verdict (not a 100 % that was met)
    untested = by_cell[(AKTO, "food_processing")]
    assert untested[5:7] == ["0", "0"] and untested[7] == "" and untested[9] == ""

    english = client.get("/api/stats/pass-rates?format=csv&lang=en", headers=admin).text.lstrip("\ufeff")
    header, *body = list(csv.reader(io.StringIO(english)))
    assert header[0] == "period" and header[-1] == "met"
    assert {r[9] for r in body} == {"yes", "no", ""}

    rows = client.get("/api/stats/pass-rates?by=industry", headers=admin).json()["rows"]
    assert {r["industry"] for r in rows} == {i["slug"] for i in cat["industries"]}
    assert all(r["pass_rate"] is None and r["met"] is None for r in rows if r["tested"] == 0)


def test_a_week_spanning_two_years_counts_in_the_period_of_its_monday(
    client: TestClient, token: Callable[..., dict[str, str]]
) -> None:
    admin = token("admin")
    # Monday 29 December 2025 to Sunday 4 January 2026 in Asia/Shanghai (Sunday 28 December in UTC)
    monday = datetime(2025, 12, 28, 16, 0, tzinfo=UTC)
    week = {**cell(AKTO, "textiles", 0, 40, 2), "week_start": monday.isoformat()}
    week["week_end"] = (monday + timedelta(weeks=1)).isoformat()
    post_cells(client, admin, week)
    keys = {"week": "2025-12-29", "month": "2025-12", "quarter": "2025-Q4", "year": "2025"}
    for period, key in keys.items():
        rows = client.get(f"/api/stats/pass-rates?period={period}&by=county", headers=admin).json()["rows"]
        assert {(r["period"], r["tested"]) for r in rows if r["county"] == AKTO} == {(key, 40)}, period
