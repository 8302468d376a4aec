"""HTTP views of the statistics domain: catalogue, cell-weeks in, grid, series, pass rates (JSON, CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..auth.service import Principal
from ..deps import Cat, Now, Sess, caller
from ..inputs import UtcDatetime
from . import service

__all__ = ["router"]

router = APIRouter(prefix="/api/stats", tags=["statistics"])

Reader = Annotated[Principal, Depends(caller("alerts:read"))]
Writer = Annotated[Principal, Depends(caller("warnings:write"))]


class CellWeekBody(BaseModel):
    region: str = Field(max_length=16)
    industry: str = Field(max_length=64)
    week_start: UtcDatetime
    week_end: UtcDatetime
    tested: int = Field(ge=0, le=1_000_000)
    failed: int = Field(ge=0, le=1_000_000)
    #: hazard item -> number of failed batches naming it (the topic's lists of ids are accepted too)
    item_failures: dict[str, int | list[str]] | list[tuple[str, list[str]]] = Field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        raw = self.item_failures
        pairs = raw.items() if isinstance(raw, dict) else raw
        return {k: v if isinstance(v, int) else len(v) for k, v in pairs}


class CellWeeksBody(BaseModel):
    cells: list[CellWeekBody] = Field(min_length=1, max_length=10_000)


@router.get("/catalogue")
def catalogue(principal: Reader, cat: Cat) -> dict[str, Any]:
    """Counties, industries (with their policy targets) and hazard items, in Chinese and English, and
    the bureau's time zone (the dashboard shows every time in it, whatever the browser's clock is set to)."""
    return {
        "prefecture": {
            "code": cat.prefecture_code,
            "zh": cat.prefecture_name_zh,
            "en": cat.prefecture_name_en,
        },
        "timezone": cat.timezone,
        "counties": [{"code": r.code, "zh": r.name_zh, "en": r.name_en} for r in cat.regions],
        "industries": [
            {
                "slug": i.slug,
                "zh": i.name_zh,
                "en": i.name_en,
                "target": cat.target_for_industry(i.slug),
                "items": list(i.hazard_items),
            }
            for i in cat.industries
        ],
        "items": [{"name": h.name, "zh": h.name_zh, "en": h.name_en} for h in cat.hazard_items],
    }


@router.post("/cell-weeks", status_code=202)
def post_cell_weeks(
    body: CellWeeksBody, session: Sess, principal: Writer, now: Now, cat: Cat
) -> dict[str, int]:
    """Record closed (county, industry) weeks; a resubmitted week replaces its figures."""
    cells = [
        service.CellWeekIn(
            region=c.region,
            industry=c.industry,
            week_start=c.week_start,
            week_end=c.week_end,
            tested=c.tested,
            failed=c.failed,
            item_failures=c.counts(),
        )
        for c in body.cells
    ]
    n = service.record_cell_weeks(session, catalogue=cat, cells=cells, now=now)
    session.commit()
    return {"recorded": n}


@router.get("/grid")
def grid(
    session: Sess, principal: Reader, cat: Cat, weeks: Annotated[int, Query(ge=1, le=52)] = 4
) -> dict[str, Any]:
    return service.grid(session, catalogue=cat, principal=principal, weeks=weeks)


@router.get("/series")
def series(
    session: Sess,
    principal: Reader,
    cat: Cat,
    county: Annotated[str | None, Query(max_length=16)] = None,
    industry: Annotated[str | None, Query(max_length=64)] = None,
    item: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    return service.series(
        session, catalogue=cat, principal=principal, region=county, industry=industry, item=item
    )


CSV_COLUMNS = (
    "period",
    "county",
    "county_name",
    "industry",
    "industry_name",
    "tested",
    "failed",
    "pass_rate",
    "target",
    "met",
)
#: the CSV's header row and ``met`` values in each language the endpoint offers
CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "en": CSV_COLUMNS,
    "zh-CN": (
        "周期",
        "县市代码",
        "县市",
        "行业代码",
        "行业",
        "抽检批次",
        "不合格批次",
        "合格率",
        "目标合格率",
        "是否达标",
    ),
}
CSV_MET = {"en": ("yes", "no"), "zh-CN": ("是", "否")}


@router.get("/pass-rates", response_model=None)
def pass_rates(
    session: Sess,
    principal: Reader,
    cat: Cat,
    period: service.Period = "month",
    by: Literal["county", "industry", "county,industry"] = "county,industry",
    county: Annotated[str | None, Query(max_length=16)] = None,
    industry: Annotated[str | None, Query(max_length=64)] = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    format: Literal["json", "csv"] = "json",
    lang: Literal["zh-CN", "en"] = "zh-CN",
) -> dict[str, Any] | Response:
    """Pass rate per period and county/industry against the policy target; ``format=csv`` downloads it."""
    rows = service.pass_rates(
        session,
        catalogue=cat,
        principal=principal,
        period=period,
        by=tuple(by.split(",")),  # type: ignore[arg-type]
        region=county,
        industry=industry,
        since=since,
        until=until,
    )
    if format == "json":
        return {"period": period, "by": by, "rows": rows}
    attr = "name_zh" if lang == "zh-CN" else "name_en"
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheet programs read the Chinese names as UTF-8
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS[lang])
    yes, no = CSV_MET[lang]
    for r in rows:
        reg = cat.region(r["county"]) if r["county"] else None
        ind = cat.industry(r["industry"]) if r["industry"] else None
        writer.writerow(
            [
                r["period"],
                r["county"] or "",
                getattr(reg, attr) if reg else "",
                r["industry"] or "",
                getattr(ind, attr) if ind else "",
                r["tested"],
                r["failed"],
                "" if r["pass_rate"] is None else f"{r['pass_rate']:.4f}",
                "" if r["target"] is None else f"{r['target']:.4f}",
                "" if r["met"] is None else (yes if r["met"] else no),
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pass-rates-{period}.csv"'},
    )
