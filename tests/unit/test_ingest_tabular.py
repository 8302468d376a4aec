"""Lab spreadsheets and record files: Chinese headers, conversions, time zone, formats."""

from __future__ import annotations

import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from ingest_cases import compound_file, uscc

from stream.ingest import RecordKind, TableError, parse_table

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = (
    "抽样编号,抽样日期,区县,行业,产品名称,生产企业,统一社会信用代码,检验结论,不合格项目,"
    "抽样人员,检验机构,报告日期,任务来源,序号"
)


def _csv(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode("utf-8")


def test_chinese_headers_map_to_the_wire_contract() -> None:
    content = _csv(
        f"L-1,2026-03-02,阿克陶县,纺织服装,棉T恤,某厂,{uscc(1)},不合格,甲醛、pH值；偶氮,张三,州质检所,2026/3/5,风险监测,1"
    )
    table = parse_table(content, filename="lab.csv")
    assert table.kind is RecordKind.sampling and table.format == "csv"
    assert table.ignored_columns == ["序号"]
    (row,) = list(table.rows)
    assert row.row == 2 and not row.errors
    assert row.data == {
        "id": "L-1",
        "sampled_at": datetime(2026, 3, 2, tzinfo=SHANGHAI),
        "region": "653022",
        "industry": "textiles",
        "product": "棉T恤",
        "enterprise_name": "某厂",
        "enterprise_id": uscc(1),
        "passed": False,
        "failed_items": ["甲醛", "pH值", "偶氮"],
        "inspector_id": "张三",
        "lab_id": "州质检所",
        "reported_at": datetime(2026, 3, 5, tzinfo=SHANGHAI),
        "source": "risk_monitoring",
    }


def _tab_text() -> str:
    """A lab sheet as Excel's "Unicode text" (or "Text (tab-delimited)") export writes it: a title
    line, tab-separated cells, CRLF, commas inside cells, a quoted cell holding a tab."""
    rows = [
        ["2026年第一季度监督抽查结果"],
        HEADER.split(","),
        ["L-1", "2026/3/2", "阿克陶县", "纺织服装", "棉T恤", '"某厂\t(分厂)"', uscc(1), "不合格"],
    ]
    rows[2] += ["甲醛,pH值", "张三", "州质检所", "2026/3/5", "风险监测", "1"]
    return "".join("\t".join(row) + "\r\n" for row in rows)


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe" + _tab_text().encode("utf-16-le"),  # Excel's "Unicode text"
        b"\xfe\xff" + _tab_text().encode("utf-16-be"),
        _tab_text().encode("utf-8"),
        b"\xef\xbb\xbf" + _tab_text().encode("utf-8"),
        _tab_text().encode("gb18030"),
    ],
    ids=["utf-16-le", "utf-16-be", "utf-8", "utf-8-bom", "gb18030"],
)
@pytest.mark.parametrize("name", ["lab.txt", "lab.tsv", "lab.csv", None])
def test_tab_separated_text_is_read_like_csv(content: bytes, name: str | None) -> None:
    table = parse_table(content, filename=name)
    assert table.kind is RecordKind.sampling and table.format == "csv"
    assert table.ignored_columns == ["序号"]
    (row,) = list(table.rows)
    assert row.row == 3 and not row.errors
    assert row.data["region"] == "653022" and row.data["enterprise_name"] == "某厂\t(分厂)"
    assert row.data["failed_items"] == ["甲醛", "pH值"]  # a comma inside a cell is no separator
    assert row.data["source"] == "risk_monitoring"


def test_a_comma_separated_sheet_holding_tabs_in_cells_stays_comma_separated() -> None:
    (row,) = parse_table(
        _csv(f'L-1,2026-03-02,乌恰县,建材,水泥,"某\t厂",{uscc(2)},合格,,李四,,,,'), filename="x.csv"
    ).rows
    assert row.data["enterprise_name"] == "某\t厂" and row.data["region"] == "653024"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-03-02 10:30", datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
        ("2026年3月2日", datetime(2026, 3, 2, tzinfo=SHANGHAI)),
        ("2026/3/2", datetime(2026, 3, 2, tzinfo=SHANGHAI)),
        ("2026/3/2 9:05", datetime(2026, 3, 2, 9, 5, tzinfo=SHANGHAI)),  # Excel's zh-CN CSV export
        ("2026-03-02 9:05:07", datetime(2026, 3, 2, 9, 5, 7, tzinfo=SHANGHAI)),
        ("2026年3月2日 9:05", datetime(2026, 3, 2, 9, 5, tzinfo=SHANGHAI)),
        ("2026年3月2日10:30", datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
        ("2026-03-02T10:30:00+06:00", datetime.fromisoformat("2026-03-02T10:30:00+06:00")),
        ("2026-03-02T02:30:00Z", datetime.fromisoformat("2026-03-02T02:30:00+00:00")),
        ("2026.3.2", datetime(2026, 3, 2, tzinfo=SHANGHAI)),
        ("2026.03.02 10:30", datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
        ("2026-03-02 10:30:15.5", datetime(2026, 3, 2, 10, 30, 15, 500000, tzinfo=SHANGHAI)),
        ("46083", datetime(2026, 3, 2, tzinfo=SHANGHAI)),  # an Excel serial exported as its number
        ("46083.4375", datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
    ],
)
def test_dates_without_offset_are_read_in_the_catalogue_zone(cell: str, expected: datetime) -> None:
    (row,) = parse_table(
        _csv(f"L-1,{cell},乌恰县,建材,水泥,,{uscc(2)},合格,,李四,,,,"), filename="x.csv"
    ).rows
    assert row.data["sampled_at"] == expected and row.data["sampled_at"].utcoffset() == expected.utcoffset()


def test_unreadable_cells_reject_their_row_naming_the_column() -> None:
    rows = list(
        parse_table(_csv(f"L-1,someday,乌恰县,建材,水泥,,{uscc(2)},也许,,李四,,,,"), filename="x.csv").rows
    )
    assert [(e.field, e.type) for e in rows[0].errors] == [
        ("sampled_at", "unreadable_cell"),
        ("passed", "unreadable_cell"),
    ]
    assert "someday" in rows[0].errors[0].reason and "合格" in rows[0].errors[1].reason


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("监督抽查", "supervision_sampling"),
        ("监督抽检", "supervision_sampling"),  # the food-safety term
        ("产品质量监督抽查", "supervision_sampling"),
        ("食品安全监督抽检", "supervision_sampling"),
        ("风险监测", "risk_monitoring"),
        ("质量安全风险监测", "risk_monitoring"),
        ("食品安全风险监测", "risk_monitoring"),
        ("专项抽查", "special_campaign"),
        ("专项抽检", "special_campaign"),
        ("risk_monitoring", "risk_monitoring"),
        ("Risk monitoring", "risk_monitoring"),
    ],
)
def test_task_sources_in_their_official_chinese_terms(cell: str, expected: str) -> None:
    (row,) = parse_table(
        _csv(f"L-1,2026-03-02,乌恰县,建材,水泥,,{uscc(2)},合格,,李四,,,{cell},"), filename="x.csv"
    ).rows
    assert not row.errors and row.data["source"] == expected


def test_an_unknown_task_source_lists_the_chinese_and_english_names() -> None:
    (row,) = parse_table(
        _csv(f"L-1,2026-03-02,乌恰县,建材,水泥,,{uscc(2)},合格,,李四,,,日常巡检,"), filename="x.csv"
    ).rows
    (err,) = row.errors
    assert err.field == "source" and "'日常巡检'" in err.reason
    for name in ("监督抽查", "监督抽检", "风险监测", "专项抽查", "supervision_sampling", "special_campaign"):
        assert name in err.reason, err.reason


def test_an_unknown_hazard_grade_lists_the_chinese_and_english_names() -> None:
    head = "巡查编号,巡查日期,区县,行业,统一社会信用代码,巡查人员,隐患,隐患等级,处置措施"
    line = f"P-1,2026-03-03,乌恰县,农资,{uscc(3)},insp-9,标签缺失,较大隐患,当场整改"
    (row,) = parse_table(_csv(line, header=head), filename="p.csv").rows
    (err,) = row.errors
    assert err.field == "severity" and "重大隐患" in err.reason and "major" in err.reason


@pytest.mark.parametrize("cell", ["2026-3-2-1", "2026年3月2日后", "2026-03-0210:30", "2026", "2026.3"])
def test_a_cell_that_is_almost_a_date_says_so(cell: str) -> None:
    (row,) = parse_table(
        _csv(f"L-1,{cell},乌恰县,建材,水泥,,{uscc(2)},合格,,李四,,,,"), filename="x.csv"
    ).rows
    (err,) = row.errors
    assert (err.field, err.type) == ("sampled_at", "unreadable_cell")
    assert err.reason == f"'{cell}' is not a date (use 2026-03-02, 2026-03-02 10:30 or ISO 8601)"


def test_header_below_a_title_block_and_blank_lines() -> None:
    content = (
        "克州产品质量监督抽查结果汇总表,,\n,,\n"
        + HEADER
        + "\n\n"
        + f"L-7,2026-03-02,Artux,食品加工,馕,,{uscc(3)},合格,,王五,,,,\n"
    )
    rows = list(parse_table(content.encode(), filename="x.csv").rows)
    assert [(r.row, r.data["id"], r.data["region"], r.data["industry"]) for r in rows] == [
        (5, "L-7", "653001", "food_processing")
    ]


def test_gb18030_csv_and_wire_headers_any_case() -> None:
    content = (
        "ID,Sampled_At,region,industry,product,enterprise_id,passed,inspector_id\n"
        f"S-1,2026-03-02,阿合奇县,textiles,毛毡,{uscc(4)},true,赵六\n"
    )
    (row,) = parse_table(content.encode("gb18030"), filename="x.csv").rows
    assert row.data["id"] == "S-1" and row.data["region"] == "653023" and row.data["passed"] is True


def test_patrol_sheet_is_recognised_and_converted() -> None:
    content = (
        f"巡查编号,巡查日期,区县,行业,统一社会信用代码,巡查人员,隐患描述,隐患等级,处置措施,备注\n"
        f"P-1,2026-03-03 09:30,阿图什市,食品加工,{uscc(5)},insp-2,原料过期,重大隐患,责令整改,已复查\n"
    )
    table = parse_table(content.encode(), filename="patrol.csv")
    assert table.kind is RecordKind.patrol
    (row,) = table.rows
    assert (row.data["severity"], row.data["action"], row.data["hazard"]) == (
        "major",
        "rectification_ordered",
        "原料过期",
    )


def test_xlsx_with_date_cells() -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["抽样结果"])
    sheet.append(HEADER.split(","))
    sheet.append(
        [
            "L-1",
            datetime(2026, 3, 2, 10, 0),  # noqa: DTZ001 - a spreadsheet date cell has no zone
            "阿克陶县",
            "纺织服装",
            "围巾",
            None,
            uscc(6),
            "合格",
            None,
            "张三",
            None,
            None,
            None,
            1,
        ]
    )
    sheet.append(
        [
            12345,
            datetime(2026, 3, 3),  # noqa: DTZ001
            "653022",
            "textiles",
            "围巾",
            None,
            uscc(6),
            "不合格",
            "甲醛",
            "张三",
        ]
    )
    buf = io.BytesIO()
    book.save(buf)
    table = parse_table(buf.getvalue(), filename="lab.xlsx", kind="sampling")
    rows = list(table.rows)
    assert table.format == "xlsx"
    assert [(r.row, r.data["id"]) for r in rows] == [(3, "L-1"), (4, "12345")]
    assert rows[0].data["sampled_at"] == datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
    assert rows[1].data["failed_items"] == ["甲醛"]


def test_xlsx_date_serials_in_number_cells_are_dates() -> None:
    # a date column formatted as a number (General) holds Excel's serials: 46083 is 2026-03-02
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER.split(","))
    fixed = ["653022", "textiles", "围巾", None, uscc(6), "合格", None, "张三", None]
    sheet.append(["L-1", 46083.4375, *fixed, 46083])
    sheet.append(["L-2", 46083, *fixed, 46086])
    sheet.append(["L-3", 20260302, *fixed])
    buf = io.BytesIO()
    book.save(buf)
    rows = list(parse_table(buf.getvalue(), filename="lab.xlsx", kind="sampling").rows)
    assert [r.errors for r in rows] == [(), (), ()]
    assert [(r.data["sampled_at"], r.data.get("reported_at")) for r in rows] == [
        (datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI), datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
        (datetime(2026, 3, 2, tzinfo=SHANGHAI), datetime(2026, 3, 5, tzinfo=SHANGHAI)),
        (datetime(2026, 3, 2, tzinfo=SHANGHAI), None),
    ]


def test_xlsx_cells_merged_down_count_for_each_of_their_rows() -> None:
    # a lab writes the county once for a group of rows and merges it down; a title merged across
    # columns, or a note merged across the next columns, is not copied sideways
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["2026年第一季度抽查结果"])
    sheet.merge_cells("A1:M1")
    sheet.append(HEADER.split(","))
    day = datetime(2026, 3, 2)  # noqa: DTZ001
    sheet.append(["L-1", day, "阿克陶县", "纺织服装", "围巾", None, uscc(6), "合格", None, "张三"])
    sheet.append(["L-2", None, None, "纺织服装", "围巾", None, uscc(6), "合格", None, "张三"])
    sheet.append(["L-3", None, None, "纺织服装", "围巾", None, uscc(6), "不合格", "甲醛", None])
    sheet.append(["L-4", day, None, "纺织服装", "围巾", None, uscc(6), "合格", None, "李四"])
    sheet.merge_cells("C3:C5")
    sheet.merge_cells("B3:B5")
    sheet.merge_cells("I5:J5")
    buf = io.BytesIO()
    book.save(buf)
    rows = list(parse_table(buf.getvalue(), filename="lab.xlsx", kind="sampling").rows)
    assert [(r.data["id"], r.data.get("region"), r.data["sampled_at"].day) for r in rows] == [
        ("L-1", "653022", 2),
        ("L-2", "653022", 2),
        ("L-3", "653022", 2),
        ("L-4", None, 2),
    ]
    assert "inspector_id" not in rows[2].data


def test_a_cell_wrapped_onto_several_lines_reads_as_one_line() -> None:
    # Alt+Enter in Excel wraps a long name; one failed item per line is a common way to list them.
    # The lines of a name join (a space only between two Latin letters or digits), items split, and a
    # patrol's note keeps its line breaks
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER.split(","))
    row = [
        "L-1",
        "2026-03-02",
        "阿克陶县",
        "纺织服装",
        "棉T恤\n(儿童)",
        "阿克陶县某服装\r\n厂（分厂）",
        uscc(1),
    ]
    row += ["不合格", "甲醛\n pH值\n", "Zhang\nSan", "州质检所", None, None, None]
    sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    (got,) = list(parse_table(buffer.getvalue(), filename="lab.xlsx").rows)
    assert not got.errors, got.errors
    assert got.data["product"] == "棉T恤(儿童)"
    assert got.data["enterprise_name"] == "阿克陶县某服装厂(分厂)"
    assert got.data["failed_items"] == ["甲醛", "pH值"]
    assert got.data["inspector_id"] == "Zhang San"
    patrol = parse_table(
        "巡查编号,巡查时间,区县,行业,统一社会信用代码,巡查人员,隐患,隐患等级,处置措施,备注\n"
        f"P-1,2026-03-02 10:00,653022,textiles,{uscc(2)},李四,消防通道堵塞,一般隐患,当场整改,"
        '"第一行\n第二行"\n'.encode(),
        filename="patrols.csv",
    )
    (p1,) = list(patrol.rows)
    assert not p1.errors and p1.data["note"] == "第一行\n第二行"


def test_jsonl_lines_pass_through_and_bad_lines_are_rows() -> None:
    content = b'{"id": "S-1", "sampled_at": "2026-03-02T10:00:00+08:00"}\n\nnot json\n'
    table = parse_table(content, filename="r.jsonl")
    rows = list(table.rows)
    assert table.kind is RecordKind.sampling
    assert rows[0].data == json.loads(content.splitlines()[0])
    assert rows[1].row == 3 and rows[1].errors[0].type == "invalid_json"


def test_jsonl_lines_end_at_newlines_only() -> None:
    # U+2028 / U+0085 are allowed raw in a JSON string (a note pasted from a document)
    first = {"id": "P-1", "patrolled_at": "2026-03-03T09:30:00+08:00", "note": "整改完毕\u2028复查合格"}
    second = {"id": "P-2", "patrolled_at": "2026-03-03T09:30:00+08:00", "note": "a\x85b"}
    content = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in (first, second)).encode("utf-8")
    table = parse_table(content, filename="r.jsonl")
    assert table.kind is RecordKind.patrol
    assert [(r.row, r.data, r.errors) for r in table.rows] == [(1, first, ()), (2, second, ())]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"a,b,c\n1,2,3\n", "x.csv", "no header row"),
        (b"PK\x03\x04garbage", "x.xlsx", "not a readable XLSX"),
        (b"\xff\xfe\x00\xd8garbage\x81", "x.csv", "neither UTF-8 nor GB 18030"),
    ],
)
def test_unreadable_files(content: bytes, name: str, message: str) -> None:
    with pytest.raises(TableError, match=message):
        list(parse_table(content, filename=name).rows)


@pytest.mark.parametrize("name", ["lab.xls", "lab.xlsx", "lab.csv", None])
def test_an_old_xls_workbook_is_refused_saying_to_save_it_as_xlsx(name: str | None) -> None:
    # an Excel 97-2003 workbook is an OLE2 compound file, not text: "neither UTF-8 nor GB 18030" misled
    with pytest.raises(TableError, match=r"Excel 97-2003 workbook \(\.xls\).*save it as \.xlsx"):
        parse_table(compound_file("Workbook", "SummaryInformation"), filename=name)


@pytest.mark.parametrize("name", ["lab.xlsx", "lab.xls", None])
def test_a_password_protected_workbook_is_refused_saying_to_remove_the_password(name: str | None) -> None:
    # Excel saves an encrypted .xlsx as an OLE2 compound file holding the encrypted package
    content = compound_file("EncryptionInfo", "EncryptedPackage")
    with pytest.raises(TableError, match=r"password-protected.*remove the password"):
        parse_table(content, filename=name)


@pytest.mark.parametrize(
    ("sampled", "reported", "expected"),
    [
        # a date-only report date is that whole day: on the sampling day it is not earlier than the sampling
        ("2026-03-02 10:30", "2026-03-02", datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
        ("2026-03-02 10:30", "2026年3月2日", datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)),
        ("2026-03-01T20:00:00Z", "2026/3/2", datetime(2026, 3, 2, 4, 0, tzinfo=SHANGHAI)),
        # another day, or a report date with a time: read as written
        ("2026-03-02 10:30", "2026-03-03", datetime(2026, 3, 3, tzinfo=SHANGHAI)),
        ("2026-03-02", "2026-03-02", datetime(2026, 3, 2, tzinfo=SHANGHAI)),
        ("2026-03-02 10:30", "2026-03-01", datetime(2026, 3, 1, tzinfo=SHANGHAI)),
        ("2026-03-02 10:30", "2026-03-02 09:00", datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)),
        ("", "2026-03-02", datetime(2026, 3, 2, tzinfo=SHANGHAI)),
    ],
)
def test_a_date_only_report_date_is_the_whole_day(sampled: str, reported: str, expected: datetime) -> None:
    (row,) = parse_table(
        _csv(f"L-1,{sampled},乌恰县,建材,水泥,,{uscc(2)},合格,,李四,,{reported},,"), filename="x.csv"
    ).rows
    assert row.data["reported_at"] == expected


def test_a_date_cell_report_date_is_the_whole_day() -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER.split(","))
    # a spreadsheet date cell without a time reads back as midnight
    sampled, reported = datetime(2026, 3, 2, 10, 30), datetime(2026, 3, 2)  # noqa: DTZ001
    sheet.append(
        ["L-1", sampled, "653022", "textiles", "围巾", None, uscc(6), "合格", None, "张三", None, reported]
    )
    buf = io.BytesIO()
    book.save(buf)
    (row,) = parse_table(buf.getvalue(), filename="lab.xlsx", kind="sampling").rows
    assert row.data["reported_at"] == row.data["sampled_at"] == datetime(2026, 3, 2, 10, 30, tzinfo=SHANGHAI)
