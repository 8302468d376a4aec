"""The ingest HTTP API: auth (401/403), single records, batches, file imports, per-row outcomes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ingest_cases import clock, compound_file, patrol, sampling, store, uscc

from stream.ingest import Principal, create_ingest_router, static_verifier

TOKENS = {
    "t-insp": Principal("field-inspector", "inspector"),
    "t-akto": Principal("akto-inspector", "inspector", region="653022"),
    "t-duty": Principal("duty", "duty_officer"),
    "t-admin": Principal("root", "admin"),
}
AUTH = {"Authorization": "Bearer t-insp"}


@pytest.fixture
def wakes() -> list[int]:
    return []


@pytest.fixture
def client(tmp_path: Path, wakes: list[int]) -> Iterator[TestClient]:
    with store("sqlite", tmp_path) as sessions:
        app = FastAPI()
        app.include_router(
            create_ingest_router(
                session_factory=sessions,
                verify=static_verifier(TOKENS),
                clock=clock,
                max_batch_rows=50,
                on_accepted=lambda: wakes.append(1),
            )
        )
        with TestClient(app) as c:
            yield c


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dTpw"}])
@pytest.mark.parametrize("path", ["/api/v1/sampling-results", "/api/v1/patrol-reports:batch"])
def test_unauthenticated_is_401(client: TestClient, headers: dict[str, str], path: str) -> None:
    r = client.post(path, json=sampling(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"]["error"] == "unauthenticated"


def test_a_role_that_may_not_push_is_403(client: TestClient) -> None:
    r = client.post("/api/v1/sampling-results", json=sampling(), headers={"Authorization": "Bearer t-duty"})
    assert r.status_code == 403 and "duty_officer" in r.json()["detail"]["message"]


def test_county_scope_403_names_the_county(client: TestClient) -> None:
    akto = {"Authorization": "Bearer t-akto"}
    r = client.post("/api/v1/patrol-reports", json=patrol(region="653001"), headers=akto)
    assert r.status_code == 403
    assert "653001 (阿图什市)" in r.json()["detail"]["message"] and "653022" in r.json()["detail"]["message"]
    assert (
        client.post("/api/v1/patrol-reports", json=patrol(region="阿克陶"), headers=akto).status_code == 201
    )


def test_single_record_accepted_then_duplicate_then_conflict(client: TestClient, wakes: list[int]) -> None:
    r = client.post("/api/v1/sampling-results", json=sampling(1), headers=AUTH)
    assert r.status_code == 201 and r.json()["status"] == "accepted" and r.json()["id"] == "S-1"
    assert len(wakes) == 1
    r = client.post("/api/v1/sampling-results", json=sampling(1), headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    assert r.json()["accepted_at"] == "2026-03-10T12:00:00+00:00"
    r = client.post("/api/v1/sampling-results", json=sampling(1, product="felt"), headers=AUTH)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["error"] == "conflict" and detail["id"] == "S-1" and "'S-1'" in detail["message"]
    assert len(wakes) == 1


def test_invalid_record_is_422_with_field_and_reason(client: TestClient) -> None:
    r = client.post("/api/v1/sampling-results", json=sampling(enterprise_id="123"), headers=AUTH)
    assert r.status_code == 422
    (err,) = r.json()["detail"]["errors"]
    assert err["field"] == "enterprise_id" and "18 characters" in err["reason"]


def test_an_id_holding_a_nul_is_refused_and_the_batch_around_it_kept(client: TestClient) -> None:
    # PostgreSQL refuses NUL in text: storing it failed the whole group or chunk with a 500
    r = client.post("/api/v1/patrol-reports", json=patrol(1, id="P-1\x00"), headers=AUTH)
    assert r.status_code == 422
    (err,) = r.json()["detail"]["errors"]
    assert (err["field"], err["type"]) == ("id", "control_character")
    rows = [sampling(1), sampling(2, id="S-\x002"), sampling(3)]
    body = client.post("/api/v1/sampling-results:batch", json=rows, headers=AUTH).json()
    assert [(o["status"], o["field"]) for o in body["outcomes"]] == [
        ("accepted", None),
        ("rejected", "id"),
        ("accepted", None),
    ]


def test_a_name_holding_a_nul_is_refused_naming_the_field(client: TestClient) -> None:
    # the enterprise name labels its warnings, which the alert service refuses with a NUL: the
    # record is refused at the door, where the inspector sees why, instead of its warning lost
    r = client.post(
        "/api/v1/sampling-results", json=sampling(1, enterprise_name="喀什\x00某厂"), headers=AUTH
    )
    assert r.status_code == 422
    (err,) = r.json()["detail"]["errors"]
    assert (err["field"], err["type"]) == ("enterprise_name", "control_character")
    assert "U+0000 at character 3" in err["reason"]
    r = client.post("/api/v1/patrol-reports", json=patrol(1, hazard="漏\x00电"), headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["field"] == "hazard"
    noted = client.post("/api/v1/patrol-reports", json=patrol(2, note="第一行\n第二行"), headers=AUTH)
    assert noted.status_code == 201, noted.json()
    csv = (
        "抽样编号,抽样日期,区县,行业,产品名称,统一社会信用代码,检验结论,不合格项目,抽样人员,生产企业\n"
        f"L-1,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},不合格,甲醛\x00,张三,某厂\n"
        f"L-2,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},合格,,张三,某\x1b厂\n"
    )
    out = client.post("/api/v1/imports", headers=AUTH, files={"file": ("lab.csv", csv.encode(), "text/csv")})
    assert [(o["status"], o["field"]) for o in out.json()["outcomes"]] == [
        ("rejected", "failed_items.0"),
        ("rejected", "enterprise_name"),
    ]


def test_a_lone_surrogate_is_refused_in_its_row_not_a_500(client: TestClient) -> None:
    # JSON may escape half of a UTF-16 pair (a field app cutting an id through an emoji): the row is
    # refused, and the answer (which names the id, the field and the value) is still written
    single = '{"id": "S-\\ud800", "passed": true}'
    r = client.post("/api/v1/sampling-results", content=single.encode(), headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"]["id"] == "S-\ufffd"
    good = json.dumps(sampling(1))
    bad = [
        json.dumps(sampling(2)).replace('"S-2"', '"S-\\ud83d"'),
        json.dumps(sampling(3)).replace('"passed": true', '"passed": "\\udc00"'),
        json.dumps(sampling(4)).replace('"passed"', '"\\ud800": 1, "passed"'),
    ]
    r = client.post("/api/v1/sampling-results:batch", content=f"[{good}, {', '.join(bad)}]", headers=AUTH)
    assert r.status_code == 200
    outcomes = r.json()["outcomes"]
    assert [o["status"] for o in outcomes] == ["accepted", "rejected", "rejected", "rejected"]
    assert outcomes[1]["id"] == "S-\ufffd" and outcomes[1]["field"] == "id"
    assert outcomes[2]["field"] == "passed" and "udc00" in outcomes[2]["reason"]
    assert outcomes[3]["errors"][0]["type"] == "string_unicode"


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    r = client.post("/api/v1/sampling-results", content=b"{oops", headers=AUTH)
    assert r.status_code == 400 and r.json()["detail"]["error"] == "bad_payload"


def test_a_number_too_long_to_read_is_a_400_not_a_500(client: TestClient) -> None:
    digits = b"9" * 5000  # beyond Python's 4300-digit limit for reading an integer
    r = client.post("/api/v1/sampling-results", content=digits, headers=AUTH)
    assert r.status_code == 400 and r.json()["detail"]["error"] == "bad_payload"
    assert "4300 digits" in r.json()["detail"]["message"]
    r = client.post("/api/v1/sampling-results:batch", content=b"[" + digits + b"]", headers=AUTH)
    assert r.status_code == 400 and r.json()["detail"]["error"] == "bad_payload"
    r = client.post(
        "/api/v1/patrol-reports:batch",
        content=digits + b"\n",
        headers={**AUTH, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.json()["rejected"] == 1
    assert r.json()["outcomes"][0]["reason"].startswith("line is not JSON")


def test_a_time_with_no_utc_equivalent_is_rejected_naming_the_field(client: TestClient) -> None:
    r = client.post(
        "/api/v1/sampling-results",
        json=sampling(reported_at="9999-12-31T23:59:59-12:00"),
        headers=AUTH,
    )
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]["errors"]
    assert err["field"] == "reported_at" and "in the future" in err["reason"]


def test_batch_json_array_gives_per_row_outcomes(client: TestClient) -> None:
    body = [sampling(1), sampling(2, region="mars"), sampling(1), "S-3"]
    r = client.post("/api/v1/sampling-results:batch", json=body, headers=AUTH)
    assert r.status_code == 200
    out = r.json()
    assert (out["total"], out["accepted"], out["duplicate"], out["rejected"]) == (4, 1, 1, 2)
    assert [(o["row"], o["status"], o["field"]) for o in out["outcomes"]] == [
        (1, "accepted", None),
        (2, "rejected", "region"),
        (3, "duplicate", None),
        (4, "rejected", ""),
    ]


def test_batch_jsonl_with_a_broken_line_and_scope(client: TestClient) -> None:
    lines = [json.dumps(patrol(1, region="653022")), "{broken", json.dumps(patrol(2, region="653024"))]
    r = client.post(
        "/api/v1/patrol-reports:batch",
        content="\n".join(lines).encode(),
        headers={"Authorization": "Bearer t-akto", "Content-Type": "application/x-ndjson"},
    )
    got = [
        (o["row"], o["status"], o["errors"][0]["type"] if o["errors"] else None) for o in r.json()["outcomes"]
    ]
    assert got == [(1, "accepted", None), (2, "rejected", "invalid_json"), (3, "rejected", "out_of_scope")]


def test_a_batch_body_that_is_not_utf8_is_400_and_stores_nothing(client: TestClient) -> None:
    # GBK from an old tool: read as UTF-8 with replacement characters, its names would be mangled
    body = json.dumps([sampling(1, product="棉T恤", inspector_id="张三")], ensure_ascii=False).encode("gbk")
    r = client.post(
        "/api/v1/sampling-results:batch", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["detail"]["error"] == "bad_payload"
    assert "UTF-8" in r.json()["detail"]["message"]
    assert client.post("/api/v1/sampling-results", json=sampling(1), headers=AUTH).status_code == 201


def test_batch_jsonl_keeps_line_separators_inside_strings(client: TestClient) -> None:
    # U+2028 / U+0085 are allowed raw in a JSON string (a note pasted from a document); only \n ends a line
    lines = [
        json.dumps(patrol(1, note="整改完毕\u2028复查合格"), ensure_ascii=False),
        json.dumps(patrol(2, note="a\x85b"), ensure_ascii=False),
    ]
    r = client.post(
        "/api/v1/patrol-reports:batch",
        content="\r\n".join(lines).encode(),
        headers={**AUTH, "Content-Type": "application/x-ndjson"},
    )
    assert [(o["row"], o["id"], o["status"]) for o in r.json()["outcomes"]] == [
        (1, "P-1", "accepted"),
        (2, "P-2", "accepted"),
    ]


def test_batch_limits(client: TestClient) -> None:
    assert client.post("/api/v1/sampling-results:batch", content=b"  ", headers=AUTH).status_code == 400
    r = client.post("/api/v1/sampling-results:batch", json=[sampling(n) for n in range(51)], headers=AUTH)
    assert r.status_code == 413


def test_import_of_a_mixed_lab_csv(client: TestClient) -> None:
    csv = (
        "抽样编号,抽样日期,区县,行业,产品名称,统一社会信用代码,检验结论,不合格项目,抽样人员,备注\n"
        f"L-1,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},合格,,张三,\n"
        f"L-2,2026-03-02,火星,纺织服装,围巾,{uscc(1)},合格,,张三,\n"
        f"L-3,2026-03-02,乌恰县,建材,水泥,{uscc(2)},不合格,,李四,\n"
        f"L-4,2026-03-02,乌恰县,建材,水泥,{uscc(2)},不合格,抗压强度,李四,\n"
        f"L-5,someday,乌恰县,建材,水泥,{uscc(2)},合格,,李四,\n"
        f"L-1,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},合格,,张三,\n"
    )
    r = client.post(
        "/api/v1/imports",
        params={"kind": "sampling"},
        headers=AUTH,
        files={"file": ("lab.csv", csv.encode(), "text/csv")},
    )
    assert r.status_code == 200
    out = r.json()
    assert out["format"] == "csv" and out["ignored_columns"] == ["备注"]
    assert [(o["row"], o["id"], o["status"], o["field"]) for o in out["outcomes"]] == [
        (2, "L-1", "accepted", None),
        (3, "L-2", "rejected", "region"),
        (4, "L-3", "rejected", "failed_items"),
        (5, "L-4", "accepted", None),
        (6, "L-5", "rejected", "sampled_at"),
        (7, "L-1", "duplicate", None),
    ]
    # the same file again: the good rows are duplicates now, nothing new
    again = client.post(
        "/api/v1/imports", headers=AUTH, files={"file": ("lab.csv", csv.encode(), "text/csv")}
    ).json()
    assert (again["kind"], again["accepted"], again["duplicate"], again["rejected"]) == ("sampling", 0, 3, 3)


def test_import_reads_task_sources_by_their_chinese_names(client: TestClient) -> None:
    csv = (
        "抽样编号,抽样日期,区县,行业,产品名称,统一社会信用代码,检验结论,抽样人员,任务来源\n"
        f"T-1,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},合格,张三,监督抽检\n"
        f"T-2,2026-03-02,阿克陶县,纺织服装,围巾,{uscc(1)},合格,张三,日常检查\n"
    )
    out = client.post("/api/v1/imports", headers=AUTH, files={"file": ("lab.csv", csv.encode(), "text/csv")})
    first, second = out.json()["outcomes"]
    assert first["status"] == "accepted"
    assert (second["status"], second["field"]) == ("rejected", "source")
    assert "监督抽查" in second["reason"] and "supervision_sampling" in second["reason"]


def test_import_of_excels_unicode_text_export(client: TestClient) -> None:
    # Excel's "Unicode text": UTF-16 LE with a byte order mark, tab-separated, CRLF
    sheet = "\r\n".join(
        [
            "抽样编号\t抽样日期\t区县\t行业\t产品名称\t统一社会信用代码\t检验结论\t不合格项目\t抽样人员",
            f"U-1\t2026/3/2\t阿克陶县\t纺织服装\t围巾\t{uscc(1)}\t不合格\t甲醛,pH值\t张三",
            f"U-2\t2026/3/2\t阿克陶县\t纺织服装\t围巾\t{uscc(1)}\t合格\t\t张三",
        ]
    )
    r = client.post(
        "/api/v1/imports",
        headers=AUTH,
        files={"file": ("lab.txt", b"\xff\xfe" + sheet.encode("utf-16-le"), "text/plain")},
    )
    assert r.status_code == 200, r.json()
    out = r.json()
    assert (out["kind"], out["format"], out["accepted"], out["rejected"]) == ("sampling", "csv", 2, 0)


def test_import_xlsx_and_unreadable_files(client: TestClient) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(
        [
            "巡查编号",
            "巡查日期",
            "区县",
            "行业",
            "统一社会信用代码",
            "巡查人员",
            "隐患",
            "隐患等级",
            "处置措施",
        ]
    )
    book.active.append(
        ["P-1", "2026-03-03", "乌恰县", "农资", uscc(3), "insp-9", "标签缺失", "一般隐患", "当场整改"]
    )
    buf = io.BytesIO()
    book.save(buf)
    r = client.post(
        "/api/v1/imports",
        params={"kind": "patrol"},
        headers=AUTH,
        files={"file": ("p.xlsx", buf.getvalue(), "application/octet-stream")},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.json()
    r = client.post(
        "/api/v1/imports", headers=AUTH, files={"file": ("p.xlsx", b"PK\x03\x04zz", "application/zip")}
    )
    assert r.status_code == 400 and r.json()["detail"]["errors"][0]["field"] == "file"
    for name, content, says in [
        ("lab.xls", compound_file("Workbook"), "save it as .xlsx"),
        ("lab.xlsx", compound_file("EncryptionInfo", "EncryptedPackage"), "remove the password"),
    ]:
        r = client.post(
            "/api/v1/imports", headers=AUTH, files={"file": (name, content, "application/octet-stream")}
        )
        assert r.status_code == 400, r.json()
        (err,) = r.json()["detail"]["errors"]
        assert (err["field"], err["type"]) == ("file", "unreadable_file") and says in err["reason"]


def test_an_import_without_a_file_or_with_a_bad_kind_is_422_in_the_documented_shape(
    client: TestClient,
) -> None:
    # {"detail": {"error", "message", "errors": [{"field", "reason", "type"}]}}, as every ingest error
    csv = {"file": ("a.csv", b"id,sampled_at\n", "text/csv")}
    cases = [
        ({"params": {"kind": "weather"}, "files": csv}, "kind", "weather"),
        ({"params": {"kind": "sampling"}, "data": {"other": "x"}}, "file", "multipart form field 'file'"),
        ({"data": {"file": "lab.csv"}}, "file", "not a file"),  # a text field, not an upload
        ({"content": b"id,sampled_at\n", "headers": {"Content-Type": "text/csv"}}, "file", "multipart"),
    ]
    for request, field, says in cases:
        headers = {**AUTH, **request.pop("headers", {})}  # type: ignore[dict-item]
        r = client.post("/api/v1/imports", headers=headers, **request)  # type: ignore[arg-type]
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert set(detail) >= {"error", "message", "errors"} and detail["error"] == "invalid_request"
        (err,) = detail["errors"]
        assert err["field"] == field and says in err["reason"] and says in detail["message"], detail
    bad_kind = client.post("/api/v1/imports", params={"kind": "weather"}, headers=AUTH, files=csv).json()
    assert "sampling" in bad_kind["detail"]["errors"][0]["reason"]
    # authentication comes first, as on every ingest route
    assert client.post("/api/v1/imports", params={"kind": "weather"}).status_code == 401


def test_openapi_documents_the_import_form(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/api/v1/imports"]["post"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    (kind,) = [p for p in op["parameters"] if p["name"] == "kind"]
    assert kind["in"] == "query" and kind["schema"]["enum"] == ["sampling", "patrol"]


def test_openapi_documents_the_record_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/sampling-results"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert "enterprise_id" in schema["properties"] and "$defs" not in json.dumps(schema)
    assert {
        "/api/v1/patrol-reports",
        "/api/v1/sampling-results:batch",
        "/api/v1/patrol-reports:batch",
        "/api/v1/imports",
    } <= set(spec["paths"])


def _sheet(fmt: str, n: int, *, sized: bool = True) -> bytes:
    head = ["id", "sampled_at", "region", "industry", "product", "enterprise_id", "passed", "inspector_id"]
    rows = [[f"S-{k}", "2026-03-02", "653022", "textiles", "scarf", uscc(1), "true", "x"] for k in range(n)]
    if fmt == "csv":
        return ("\n".join(",".join(r) for r in [head, *rows]) + "\n").encode()
    if fmt == "jsonl":
        return "\n".join(json.dumps(sampling(k)) for k in range(n)).encode()
    from openpyxl import Workbook

    book = Workbook(write_only=not sized)
    sheet = book.active if sized else book.create_sheet()
    for r in [head, *rows]:
        sheet.append(r)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "sized"), [("csv", True), ("jsonl", True), ("xlsx", True), ("xlsx", False)])
def test_an_import_of_more_rows_than_the_batch_limit_is_413_and_stores_nothing(
    client: TestClient, fmt: str, sized: bool
) -> None:
    def upload(n: int) -> Any:
        files = {"file": (f"lab.{fmt}", _sheet(fmt, n, sized=sized), "application/octet-stream")}
        return client.post("/api/v1/imports", params={"kind": "sampling"}, headers=AUTH, files=files)

    r = upload(51)
    assert r.status_code == 413
    assert "51 rows" in r.json()["detail"]["message"] and "at most 50" in r.json()["detail"]["message"]
    r = upload(50)  # nothing of the refused file was stored: every row is new
    assert r.status_code == 200 and r.json()["accepted"] == 50
