"""``qualitywatch import``: the same service from the command line, with a summary of rejected rows."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner
from ingest_cases import compound_file, uscc
from sqlalchemy import func, select

from qualitywatch.cli import main
from stream.ingest import OutboxRecord, open_store


def _lab(path: Path) -> Path:
    path.write_text(
        "抽样编号,抽样日期,区县,行业,产品名称,统一社会信用代码,检验结论,不合格项目,抽样人员\n"
        f"L-1,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},合格,,张三\n"
        f"L-2,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},不合格,,张三\n"
        f"L-3,2026-03-02,Wuqia,Building materials,水泥,{uscc(2)},不合格,抗压强度、凝结时间,李四\n",
        encoding="utf-8",
    )
    return path


def test_import_accepts_good_rows_and_summarises_rejected_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    rejected = tmp_path / "rejected.csv"
    args = [
        "import",
        str(_lab(tmp_path / "lab.csv")),
        "--database-url",
        url,
        "--rejected-csv",
        str(rejected),
        "--quiet",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "3 rows: 2 accepted, 0 duplicate, 1 rejected" in result.output
    assert "row 3 (L-2): failed_items: must name at least one hazard item" in result.output
    with rejected.open(encoding="utf-8-sig") as fh:
        assert list(csv.reader(fh))[1][:3] == ["3", "L-2", "failed_items"]
    with open_store(url)() as s:
        assert s.execute(select(func.count()).select_from(OutboxRecord)).scalar_one() == 2
    again = CliRunner().invoke(main, args)
    assert "3 rows: 0 accepted, 2 duplicate, 1 rejected" in again.output


def test_import_all_good_exits_zero_and_unreadable_exits_two(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    good = tmp_path / "good.csv"
    good.write_text(
        "\n".join(_lab(tmp_path / "x.csv").read_text(encoding="utf-8").splitlines()[:2]) + "\n",
        encoding="utf-8",
    )
    ok = CliRunner().invoke(
        main, ["import", str(good), "--kind", "sampling", "--database-url", url, "--quiet"]
    )
    assert ok.exit_code == 0 and "1 accepted" in ok.output
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n", encoding="utf-8")
    bad = CliRunner().invoke(main, ["import", str(junk), "--database-url", url])
    assert bad.exit_code == 2 and "no header row" in bad.output


def test_an_unreadable_jsonl_file_of_a_given_kind_exits_two(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    junk = tmp_path / "records.jsonl"
    junk.write_bytes(b'\xff\xfe{\x00"\x00\x81\xff')  # neither UTF-8 nor GB 18030
    bad = CliRunner().invoke(
        main, ["import", str(junk), "--kind", "patrol", "--database-url", url, "--quiet"]
    )
    assert bad.exit_code == 2 and "neither UTF-8 nor GB 18030" in bad.output


def test_an_old_xls_or_a_password_protected_workbook_exits_two_saying_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    old = tmp_path / "lab.xls"
    old.write_bytes(compound_file("Workbook"))
    locked = tmp_path / "lab.xlsx"
    locked.write_bytes(compound_file("EncryptionInfo", "EncryptedPackage"))
    for path, says in [(old, "save it as .xlsx"), (locked, "remove the password")]:
        bad = CliRunner().invoke(main, ["import", str(path), "--database-url", url, "--quiet"])
        assert bad.exit_code == 2 and says in bad.output, bad.output
        assert "UTF-8" not in bad.output
