"""Reading lab spreadsheets and record files (CSV or tab-separated, XLSX, JSONL) into ingest rows.

Columns are matched by the wire-contract names (``id``, ``sampled_at`` …, any case) or by the Chinese
headers of lab report templates (抽样编号, 抽样日期, 区县, 行业, 产品名称, 生产企业, 统一社会信用代码,
检验结论, 不合格项目, 抽样人员, 检验机构, 报告日期, 任务来源; for patrols 巡查编号, 巡查日期, 隐患,
隐患等级, 处置措施, 备注 …). The header row may sit below a title block: the first row among the first
ten that names at least two known columns is taken as the header. Unknown columns are ignored and
listed in :attr:`Table.ignored_columns`. In an XLSX sheet, a cell merged down over several rows counts
for each row it covers (in its own column only).

Cell conversions (a cell that cannot be converted rejects its row, naming the column):

* dates and times without a UTC offset (and spreadsheet date cells) are read in the catalogue's time
  zone (``Asia/Shanghai`` for Kizilsu): ``2026-03-02`` is 2026-03-02T00:00:00+08:00; values with an
  offset keep it; ``2026/3/2``, ``2026.3.2``, ``2026年3月2日`` and ``2026-03-02 10:30`` are understood,
  and so are Excel date serials (``46083`` is 2026-03-02: a date column formatted as a number);
* a 报告日期 without a time of day (or a date cell, which reads back as midnight) is that whole day:
  its start, or the sampling time when the sampling falls later that same day (a report issued on
  the sampling day is not earlier than the sampling);
* 检验结论: 合格/不合格 (also true/false, yes/no, 是/否, pass/fail, 1/0);
* 不合格项目 is split on 、 , ; ， ；
* 任务来源, 隐患等级 and 处置措施 take their Chinese names (监督抽查 or 监督抽检, 重大隐患, 责令整改 …)
  or the wire value; any other value rejects the row, listing the accepted names;
* region and industry may be a code, slug, or Chinese or English name (resolved by the catalogue).

An Excel 97-2003 workbook (``.xls``) or a password-protected ``.xlsx`` (both OLE2 compound files) is
refused with a :class:`TableError` that says what to do (save as ``.xlsx``, remove the password).

Text sheets may be UTF-8, GB 18030 or UTF-16 with a BOM (Excel's "Unicode text"), separated by commas
or tabs: the separator is the one that splits the header row into known columns.

JSONL lines are wire-contract records and are passed through unchanged (strict: offsets required).
Row numbers are 1-based physical rows (the header of a plain CSV is row 1, its first record row 2); in
JSONL they are line numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any

from schemas import Catalogue, FieldError, default_catalogue

from .models import RecordKind
from .service import ListedRows, RawRow, RowChunk

__all__ = [
    "FORMATS",
    "HEADERS",
    "CellChunk",
    "Table",
    "TableError",
    "detect_format",
    "json_lines",
    "parse_table",
]

FORMATS = ("csv", "xlsx", "jsonl")

_COMMON = {
    "区县": "region",
    "所在区县": "region",
    "县市": "region",
    "地区": "region",
    "行业": "industry",
    "行业类别": "industry",
    "所属行业": "industry",
    "统一社会信用代码": "enterprise_id",
    "社会信用代码": "enterprise_id",
    "信用代码": "enterprise_id",
}
#: Chinese header -> wire field, per kind
HEADERS: dict[RecordKind, dict[str, str]] = {
    RecordKind.sampling: {
        **_COMMON,
        "抽样编号": "id",
        "样品编号": "id",
        "抽样单编号": "id",
        "抽样日期": "sampled_at",
        "抽样时间": "sampled_at",
        "产品名称": "product",
        "样品名称": "product",
        "生产企业": "enterprise_name",
        "生产企业名称": "enterprise_name",
        "企业名称": "enterprise_name",
        "检验结论": "passed",
        "结论": "passed",
        "判定结论": "passed",
        "不合格项目": "failed_items",
        "不合格项": "failed_items",
        "抽样人员": "inspector_id",
        "抽样人": "inspector_id",
        "检验机构": "lab_id",
        "承检机构": "lab_id",
        "报告日期": "reported_at",
        "签发日期": "reported_at",
        "任务来源": "source",
        "抽样类型": "source",
        "检验项目": "test_items",
    },
    RecordKind.patrol: {
        **_COMMON,
        "巡查编号": "id",
        "检查编号": "id",
        "巡查日期": "patrolled_at",
        "巡查时间": "patrolled_at",
        "检查日期": "patrolled_at",
        "巡查人员": "inspector_id",
        "检查人员": "inspector_id",
        "隐患": "hazard",
        "隐患内容": "hazard",
        "隐患描述": "hazard",
        "风险隐患": "hazard",
        "隐患等级": "severity",
        "隐患级别": "severity",
        "处置措施": "action",
        "处置方式": "action",
        "备注": "note",
    },
}
_WIRE: dict[RecordKind, tuple[str, ...]] = {
    RecordKind.sampling: (
        "id",
        "sampled_at",
        "reported_at",
        "region",
        "industry",
        "product",
        "enterprise_id",
        "enterprise_name",
        "passed",
        "failed_items",
        "test_items",
        "inspector_id",
        "lab_id",
        "source",
    ),
    RecordKind.patrol: (
        "id",
        "patrolled_at",
        "region",
        "industry",
        "enterprise_id",
        "inspector_id",
        "hazard",
        "severity",
        "action",
        "note",
    ),
}
_PASSED = {
    "合格": True,
    "不合格": False,
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "是": True,
    "否": False,
    "pass": True,
    "passed": True,
    "fail": False,
    "failed": False,
    "1": True,
    "0": False,
}
#: the Chinese names of the enumerated columns, as official forms and lab templates write them
_ENUMS = {
    "source": {
        "监督抽查": "supervision_sampling",
        "监督抽检": "supervision_sampling",  # the food-safety term
        "监督抽样": "supervision_sampling",
        "质量监督抽查": "supervision_sampling",
        "产品质量监督抽查": "supervision_sampling",
        "食品安全监督抽检": "supervision_sampling",
        "风险监测": "risk_monitoring",
        "质量安全风险监测": "risk_monitoring",
        "产品质量安全风险监测": "risk_monitoring",
        "食品安全风险监测": "risk_monitoring",
        "风险监测抽检": "risk_monitoring",
        "专项抽查": "special_campaign",
        "专项抽检": "special_campaign",
        "专项整治": "special_campaign",
        "专项行动": "special_campaign",
        "专项检查": "special_campaign",
    },
    "severity": {"一般隐患": "general", "一般": "general", "重大隐患": "major", "重大": "major"},
    "action": {
        "当场整改": "rectified_on_site",
        "现场整改": "rectified_on_site",
        "责令整改": "rectification_ordered",
        "限期整改": "rectification_ordered",
        "停产停业": "suspended",
        "责令停产停业": "suspended",
        "上报": "escalated",
        "移交": "escalated",
    },
}
#: what each enumerated column is called in an error
_ENUM_LABELS = {
    "source": "task source (任务来源)",
    "severity": "hazard grade (隐患等级)",
    "action": "action (处置措施)",
}


def _enum_value(name: str, text: str) -> str:
    """The wire value of an enumerated cell: a Chinese name, or the wire value in any case and spacing."""
    names = _ENUMS[name]
    found = names.get(text)
    if found is not None:
        return found
    key = re.sub(r"[\s-]+", "_", text.strip().lower())
    if key in names.values():
        return key
    accepted = "; ".join(
        f"{' / '.join(n for n, v in names.items() if v == value)} ({value})"
        for value in dict.fromkeys(names.values())
    )
    raise ValueError(f"'{text}' is not a {_ENUM_LABELS[name]}; use {accepted}")


_SPLIT_ITEMS = re.compile(r"[、,;，；\r\n]")  # one item per line (Alt+Enter) too
_BRACKETS = re.compile(r"[(（\[【].*?[)）\]】]")
_CN_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?(.*)$")
_YMD = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T\s]+(.*))?$")
#: an Excel date serial: a number whose whole part has five digits (1927-05-18 to 2173-10-14)
_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
_EXCEL_EPOCH = datetime(1899, 12, 30)  # noqa: DTZ001 - serials count days on the sheet's wall clock
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]{1,3})(\d+):([A-Z]{1,3})(\d+)"')
_ONE_DIGIT_HOUR = re.compile(r"^(\d)(?=:)")
_DATE_FIELDS = {"sampled_at", "reported_at", "patrolled_at"}
#: converted afresh every time: mutable results, or values that are rarely repeated
_FRESH = {"failed_items", "test_items", "id", "note", "hazard"}
_MEMO_LIMIT = 50_000  # entries per column
_MISSING = object()
_BLANK = object()


class TableError(ValueError):
    """The file as a whole cannot be read (format, encoding, no header row)."""


@dataclass
class Table:
    """A parsed file: its kind, the header mapping, and its rows (lazily produced).

    Read it once, either as :attr:`rows` or as :meth:`chunks` (picklable slices of raw cells that
    are converted where they are prepared, e.g. on a worker process): both draw on the same reader.
    """

    kind: RecordKind
    format: str
    columns: dict[int, str]
    ignored_columns: list[str]
    rows: Iterator[RawRow]
    total: int | None = field(default=None)
    cells: Iterator[tuple[int, list[Any]]] | None = field(default=None, repr=False)
    #: rows after the header, blank ones included (JSONL: lines that are not blank), counted without
    #: converting a cell; ``None``: not known
    count: Callable[[], int] | None = field(default=None, repr=False)

    def row_count(self) -> int | None:
        """How many rows follow the header (see :attr:`count`), read before any row is stored."""
        return None if self.count is None else self.count()

    def chunks(self, size: int) -> Iterator[RowChunk]:
        """The remaining rows in slices of at most ``size`` physical rows (blank lines included)."""
        if self.cells is None:
            rows = iter(self.rows)
            while listed := list(islice(rows, size)):
                yield ListedRows(listed)
            return
        columns = _column_plan(self.columns)
        cells = iter(self.cells)
        while batch := list(islice(cells, size)):
            yield CellChunk(columns, batch)


def _column_plan(columns: dict[int, str]) -> tuple[tuple[int, str, bool], ...]:
    return tuple((n, name, name in _FRESH) for n, name in columns.items())


#: per-process memo of converted cells, per catalogue: lab sheets repeat counties, dates, conclusions
_MEMOS: dict[int, tuple[Catalogue, dict[str, dict[Any, Any]]]] = {}


def _memo_for(catalogue: Catalogue) -> dict[str, dict[Any, Any]]:
    found = _MEMOS.get(id(catalogue))
    if found is None or found[0] is not catalogue:
        if len(_MEMOS) >= 4:
            _MEMOS.clear()
        found = _MEMOS[id(catalogue)] = (catalogue, {})
    return found[1]


def _convert_cells(
    columns: tuple[tuple[int, str, bool], ...],
    cells: Iterable[tuple[int, list[Any]]],
    catalogue: Catalogue,
    memos: dict[str, dict[Any, Any]],
) -> Iterator[RawRow]:
    """Rows from raw cells: each mapped cell converted (memoised per column), blank lines skipped."""
    per_column = [(n, name, fresh, memos.setdefault(name, {})) for n, name, fresh in columns]
    for number, row in cells:
        data: dict[str, Any] = {}
        errors: list[FieldError] | None = None
        width = len(row)
        for n, name, fresh, memo in per_column:
            if n >= width:
                continue
            value = row[n]
            if value is None:
                continue
            converted = _MISSING if fresh else memo.get(value, _MISSING)
            if converted is _MISSING:
                if isinstance(value, str) and not value.strip():
                    converted = _BLANK
                else:
                    try:
                        converted = _convert(name, value, catalogue)
                    except ValueError as exc:
                        if errors is None:
                            errors = []
                        errors.append(FieldError(name, str(exc), "unreadable_cell"))
                        continue
                if not fresh and len(memo) < _MEMO_LIMIT:
                    memo[value] = converted
            if converted is not _BLANK:
                data[name] = converted
        day = data.get("reported_at")
        if type(day) is date:
            data["reported_at"] = _report_time(day, data.get("sampled_at"), catalogue)
        if data or errors:
            yield RawRow(number, data, tuple(errors) if errors else ())


def _report_time(day: date, sampled: Any, catalogue: Catalogue) -> datetime:
    """A date-only report date: the start of ``day``, or the sampling time if that falls later on ``day``."""
    start = datetime.combine(day, time(0), tzinfo=catalogue.zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=catalogue.zone)
    if isinstance(sampled, datetime) and start < sampled < end:
        return sampled
    return start


@dataclass(frozen=True, slots=True)
class CellChunk:
    """Raw spreadsheet rows and the column plan to convert them (a picklable :class:`RowChunk`)."""

    columns: tuple[tuple[int, str, bool], ...]
    cells: list[tuple[int, list[Any]]]

    def rows(self, catalogue: Catalogue) -> list[RawRow]:
        return list(_convert_cells(self.columns, self.cells, catalogue, _memo_for(catalogue)))


def detect_format(filename: str | None, content: bytes) -> str:
    """``csv``, ``xlsx`` or ``jsonl`` from the file name, else from the content."""
    name = (filename or "").lower()
    for ext, fmt in ((".xlsx", "xlsx"), (".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(ext):
            return fmt
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    if content.lstrip()[:1] == b"{":
        return "jsonl"
    return "csv"


def _header_key(text: Any) -> str:
    key = unicodedata.normalize("NFKC", str(text or "")).strip().replace("*", "")
    key = _BRACKETS.sub("", key).strip()
    return re.sub(r"\s+", "", key)


def _map_headers(cells: list[Any], kind: RecordKind) -> tuple[dict[int, str], list[str]]:
    names = HEADERS[kind]
    wire = set(_WIRE[kind])
    mapped: dict[int, str] = {}
    ignored: list[str] = []
    for n, cell in enumerate(cells):
        key = _header_key(cell)
        if not key:
            continue
        target = names.get(key) or (key.lower() if key.lower() in wire else None)
        if target is None or target in mapped.values():
            ignored.append(str(cell).strip())
        else:
            mapped[n] = target
    return mapped, ignored


def _guess_kind(cells: list[Any]) -> RecordKind:
    """The kind whose headers this row names more of (sampling on a tie)."""
    patrol = len(_map_headers(cells, RecordKind.patrol)[0])
    return (
        RecordKind.patrol
        if patrol > len(_map_headers(cells, RecordKind.sampling)[0])
        else RecordKind.sampling
    )


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return unicodedata.normalize("NFKC", str(value)).strip() if isinstance(value, str) else str(value).strip()


_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def _one_line(text: str) -> str:
    """A cell wrapped onto several lines (Alt+Enter) as one line: the lines joined, with a space only
    between two Latin letters or digits (a wrapped Chinese name has none to restore)."""
    if "\n" not in text and "\r" not in text:
        return text
    out = ""
    for part in filter(None, _LINE_BREAKS.split(text)):
        if out and out[-1].isascii() and out[-1].isalnum() and part[0].isascii() and part[0].isalnum():
            out += " "
        out += part
    return out


def _from_serial(value: Any) -> datetime | None:
    """The wall-clock time of an Excel date serial (a number cell, or its number in a CSV), else None.

    A date column formatted as a number shows Excel's serials (days since 1899-12-30, the time of day
    as the fraction); only a five-digit whole part counts, so ``20260302`` stays a basic ISO date.
    """
    if isinstance(value, str) and _SERIAL.match(text := _text(value)):
        value = float(text)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 10_000 <= value < 100_000:
        return None
    return _EXCEL_EPOCH + timedelta(seconds=round(value * 86_400))


def _parse_time(value: Any, catalogue: Catalogue) -> datetime:
    zone = catalogue.zone
    value = _from_serial(value) or value
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=zone)
    text = _text(value)
    try:
        parsed = datetime.fromisoformat(_iso_spelling(text))
    except ValueError:
        raise ValueError(f"'{text}' is not a date (use 2026-03-02, 2026-03-02 10:30 or ISO 8601)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _parse_day_or_time(value: Any, catalogue: Catalogue) -> date | datetime:
    """As :func:`_parse_time`, but a value without a time of day is its :class:`date` (the whole day).

    A spreadsheet date cell reads back as a naive midnight, and a whole Excel serial is one: they
    count as dates too.
    """
    value = _from_serial(value) or value
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date()
        return _parse_time(value, catalogue)
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or "T" in (iso := _iso_spelling(_text(value))) or ":" in iso:
        return _parse_time(value, catalogue)
    try:
        return date.fromisoformat(iso)
    except ValueError:
        return _parse_time(value, catalogue)


def _iso_spelling(text: str) -> str:
    """ISO 8601 from the spellings of lab sheets: ``2026/3/2 9:05`` (Excel's zh-CN CSV export),
    ``2026.3.2``, ``2026年3月2日10:30``, a space or ``T`` before the time, one-digit months, days and
    hours."""
    m = _CN_DATE.match(text)
    if m:
        text = f"{m[1]}-{m[2]}-{m[3]} {m[4]}"
    m = _YMD.match(text)
    if m is None:
        return text.replace("Z", "+00:00")
    rest = _ONE_DIGIT_HOUR.sub(r"0\1", (m[4] or "").strip())
    return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}" + (f"T{rest.replace('Z', '+00:00')}" if rest else "")


def _convert(name: str, value: Any, catalogue: Catalogue) -> Any:
    if name == "reported_at":
        return _parse_day_or_time(value, catalogue)  # a date becomes a time with the row's sampled_at
    if name in _DATE_FIELDS:
        return _parse_time(value, catalogue)
    if name == "passed":
        if isinstance(value, bool):
            return value
        key = _text(value).lower()
        if key not in _PASSED:
            raise ValueError(f"'{_text(value)}' is not a conclusion (合格 or 不合格)")
        return _PASSED[key]
    if name == "failed_items":
        return [p.strip() for p in _SPLIT_ITEMS.split(_text(value)) if p.strip()]
    if name == "test_items":
        try:
            return json.loads(_text(value))
        except json.JSONDecodeError:
            raise ValueError("must be a JSON list of {name, value, limit, unit, passed}") from None
    text = _text(value) if name == "note" else _one_line(_text(value))
    if name in ("region", "industry"):
        resolved = catalogue.resolve_region(text) if name == "region" else catalogue.resolve_industry(text)
        return resolved or text
    if name in _ENUMS:
        return _enum_value(name, text)
    return text


def _rows_from_cells(
    cells: Iterator[tuple[int, list[Any]]],
    kind: RecordKind | None,
    catalogue: Catalogue,
    fmt: str,
    last_row: Callable[[], int],
) -> Table:
    preamble: list[tuple[int, list[Any]]] = []
    for number, row in cells:
        preamble.append((number, row))
        guess = kind or _guess_kind(row)
        mapped, ignored = _map_headers(row, guess)
        if len(mapped) >= 2:
            break
        if len(preamble) >= 10:
            raise TableError("no header row: none of the first 10 rows names two known columns")
    else:
        raise TableError("no header row: the file has no row naming two known columns")

    rest = iter(cells)
    rows = _convert_cells(_column_plan(mapped), rest, catalogue, _memo_for(catalogue))
    header = preamble[-1][0]
    return Table(
        kind=guess,
        format=fmt,
        columns=mapped,
        ignored_columns=ignored,
        rows=rows,
        cells=rest,
        count=lambda: max(0, last_row() - header),
    )


#: the signature of an OLE2 compound file: Excel 97-2003 workbooks, and encrypted (password-protected)
#: Office Open XML files, which Excel wraps in one
_OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # a directory entry's name


def _refuse_compound_file(content: bytes) -> None:
    """Say what to do with a workbook this reader cannot open, rather than calling it undecodable text."""
    if not content.startswith(_OLE2):
        return
    if _ENCRYPTED_PACKAGE in content:
        raise TableError(
            "the workbook is password-protected (encrypted): remove the password in Excel or WPS "
            "(File > Info > Protect Workbook > Encrypt with Password, clear it), save, and import it again"
        )
    raise TableError(
        "the file is an Excel 97-2003 workbook (.xls), which cannot be read: open it in Excel or WPS, "
        "save it as .xlsx (Excel Workbook) or as CSV, and import that file"
    )


def _decode(content: bytes, *, utf16: bool = False) -> str:
    """UTF-8 (BOM or not) or GB 18030 text; with ``utf16`` (a sheet, not JSONL, which is UTF-8 by RFC
    8259) also UTF-16 with a BOM."""
    if utf16 and content.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text"
        try:
            return content.decode("utf-16")
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: refused below like any undecodable file
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return content.decode("gb18030")
        except UnicodeDecodeError:
            raise TableError("the file is neither UTF-8 nor GB 18030 text") from None


#: the separators a text sheet may use: commas (CSV) or tabs (Excel's "Unicode text" and "Text
#: (tab-delimited)" exports)
_DELIMITERS = (",", "\t")


def _delimiter(text: str, kind: RecordKind | None) -> str:
    """The separator of a text sheet: the one that splits a row among the first ten into a header row.

    Read from the header row itself (a comma or a tab inside a cell elsewhere does not count); a
    comma when no row is a header either way (the header search then says so).
    """
    for delimiter in _DELIMITERS:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for row in islice(rows, 10):
            if len(_map_headers(row, kind or _guess_kind(row))[0]) >= 2:
                return delimiter
    return ","


def _csv_cells(
    content: bytes, kind: RecordKind | None
) -> tuple[Iterator[tuple[int, list[Any]]], Callable[[], int]]:
    """The numbered rows of a CSV (or tab-separated) file, and its number of rows (a parse that keeps
    no cell)."""
    text = _decode(content, utf16=True)
    delimiter = _delimiter(text, kind)

    def last_row() -> int:
        return sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))

    return enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1), last_row


def _xlsx_cells(content: bytes) -> tuple[Iterator[tuple[int, list[Any]]], Callable[[], int]]:
    """The numbered rows of the active sheet, and its last row number.

    That is the sheet's own dimension (Excel and WPS write one); a sheet without one is counted row
    by row in a second read.
    """
    from openpyxl import load_workbook

    def open_sheet() -> tuple[Any, Any]:
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zipfile, KeyError or its own errors on a bad file
            raise TableError(f"not a readable XLSX workbook: {type(exc).__name__}: {exc}") from None
        if book.active is None:
            raise TableError("the workbook has no sheet")
        return book, book.active

    book, sheet = open_sheet()
    spans = _merged_down(book, sheet)

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            numbered = ((n, list(row)) for n, row in enumerate(sheet.iter_rows(values_only=True), start=1))
            yield from _fill_merged(numbered, spans) if spans else numbered
        finally:
            book.close()

    def last_row() -> int:
        sized: int | None = sheet.max_row if sheet.max_row and sheet.max_column else None
        if sized is not None:
            return sized
        other, counted = open_sheet()
        try:
            return sum(1 for _ in counted.iter_rows(values_only=True))
        finally:
            other.close()

    return rows(), last_row


def _merged_down(book: Any, sheet: Any) -> dict[int, list[tuple[int, int]]]:
    """The sheet's cells merged down over several rows: top row -> [(column index, last row)].

    A read-only workbook does not read merges (they follow the rows in the sheet's XML), so the XML
    is scanned for them, a megabyte at a time.
    """
    from openpyxl.utils import column_index_from_string

    archive, path = getattr(book, "_archive", None), getattr(sheet, "_worksheet_path", None)
    if archive is None or path is None:
        return {}
    spans: dict[int, list[tuple[int, int]]] = {}
    tail = b""
    with archive.open(path) as src:
        while block := src.read(1 << 20):
            text = tail + block
            end = 0
            for m in _MERGE.finditer(text):
                end = m.end()
                first, top, last = column_index_from_string(m[1].decode()), int(m[2]), int(m[4])
                if last > top:
                    spans.setdefault(top, []).append((first - 1, last))
            tail = text[max(end, len(text) - 256) :]
    return spans


def _fill_merged(
    rows: Iterable[tuple[int, list[Any]]], spans: dict[int, list[tuple[int, int]]]
) -> Iterator[tuple[int, list[Any]]]:
    """Rows with each cell merged down repeated in the empty cells below it, in its column only."""
    repeating: list[tuple[int, int, Any]] = []  # column, last row, value
    for number, row in rows:
        if repeating:
            repeating = [r for r in repeating if r[1] >= number]
            for column, _, value in repeating:
                if column >= len(row):
                    row.extend([None] * (column + 1 - len(row)))
                if row[column] is None:
                    row[column] = value
        for column, last in spans.get(number, ()):
            if column < len(row) and row[column] is not None:
                repeating.append((column, last, row[column]))
        yield number, row


def json_lines(text: str) -> list[str]:
    """The lines of a JSONL text: split at ``\n`` only (a ``\r`` before it is JSON whitespace).

    Not :meth:`str.splitlines`, which also splits at U+2028, U+0085 and other characters that JSON
    allows raw inside a string (a note pasted from a document), cutting a good record in two.
    """
    return text.split("\n")


def _jsonl_rows(lines: list[str]) -> Iterator[RawRow]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield RawRow(number, json.loads(line))
        except json.JSONDecodeError as exc:
            yield RawRow(
                number,
                None,
                (FieldError("", f"line is not JSON: {exc.msg} at column {exc.colno}", "invalid_json"),),
            )


def parse_table(
    content: bytes,
    *,
    filename: str | None = None,
    kind: RecordKind | str | None = None,
    catalogue: Catalogue | None = None,
    fmt: str | None = None,
) -> Table:
    """Parse a whole file into a :class:`Table`; ``kind`` is guessed from the headers when not given.

    Raises :class:`TableError` when the file cannot be read at all; a bad row only rejects that row.
    """
    cat = catalogue or default_catalogue()
    _refuse_compound_file(content)
    fmt = fmt or detect_format(filename, content)
    want = RecordKind(kind) if kind is not None else None
    if fmt == "jsonl":
        lines = json_lines(_decode(content))  # here, so an undecodable file is refused before any row
        if want is None:
            first = next((line for line in lines if line.strip()), "{}")
            try:
                keys = list(json.loads(first)) if first.lstrip().startswith("{") else []
            except json.JSONDecodeError:
                keys = []
            want = _guess_kind(keys)
        return Table(
            kind=want,
            format=fmt,
            columns={},
            ignored_columns=[],
            rows=_jsonl_rows(lines),
            count=lambda: sum(1 for line in lines if line.strip()),
        )
    if fmt not in FORMATS:
        raise TableError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    cells, last_row = _xlsx_cells(content) if fmt == "xlsx" else _csv_cells(content, want)
    return _rows_from_cells(cells, want, cat, fmt, last_row)
