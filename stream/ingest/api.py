"""The ingest HTTP API: a FastAPI router for inspectors' records.

``create_ingest_router(session_factory=..., verify=...)`` returns an ``APIRouter`` with

* ``POST /api/v1/sampling-results`` and ``/api/v1/patrol-reports`` — one record (JSON object);
  201 accepted, 200 duplicate (the earlier outcome), 409 same id with different content, 422 invalid,
  403 outside the token's county;
* ``POST /api/v1/sampling-results:batch`` and ``/api/v1/patrol-reports:batch`` — a JSON array or
  JSONL body; 200 with one outcome per row (row, id, status, field, reason);
* ``POST /api/v1/imports?kind=sampling|patrol`` — a CSV or XLSX (or JSONL) upload, field ``file``,
  with the wire-contract column names or the Chinese headers of lab templates; 200 with per-row outcomes,
  422 without a ``file`` field or with another ``kind`` (the query and form are read by the route, so
  that this answer has the same shape as every other).

Every route needs ``Authorization: Bearer <token>``: none or an unknown token is 401, a role that may
not push or a record outside the token's county is 403 (naming the county). Error bodies are
``{"detail": {"error", "message", "errors": [{"field", "reason", "type"}]}}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from schemas import Catalogue, FieldError, PatrolReport, SamplingResult, default_catalogue

from .auth import PUSH_ROLES, Principal, Verifier
from .errors import (
    BadPayload,
    Conflict,
    Forbidden,
    IngestError,
    InvalidRequest,
    PayloadTooLarge,
    Rejected,
    Unauthenticated,
)
from .models import RecordKind
from .service import ChunkedRows, Clock, RawRow, RowOutcome, _utc_now, submit_many, summarise
from .tabular import TableError, json_lines, parse_table
from .writer import GroupWriter

__all__ = ["BatchOut", "OutcomeOut", "create_ingest_router", "default_import_workers"]

_bearer = HTTPBearer(auto_error=False, description="an ingest token (role inspector or admin)")
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class ErrorOut(BaseModel):
    field: str
    reason: str
    type: str


class OutcomeOut(BaseModel):
    """What became of one record."""

    row: int
    id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    field: str | None
    reason: str | None
    errors: list[ErrorOut]
    accepted_at: str | None


class BatchOut(BaseModel):
    """Per-row outcomes of a batch or an import, with counts."""

    kind: Literal["sampling", "patrol"]
    total: int
    accepted: int
    duplicate: int
    rejected: int
    outcomes: list[OutcomeOut]
    format: str | None = None
    ignored_columns: list[str] = []


class ErrorDetail(BaseModel):
    error: str
    message: str
    errors: list[ErrorOut]


class ErrorOutBody(BaseModel):
    detail: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOutBody, "description": text}
    for code, text in (
        (400, "the body or file cannot be read"),
        (401, "no token, or an unknown one"),
        (403, "the token's role may not push, or the record is outside its county"),
        (413, "too many rows or too many bytes"),
    )
}


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` inlined (an OpenAPI request body cannot carry ``$defs``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]


def _body_spec(model: type[BaseModel], batch: bool) -> dict[str, Any]:
    one = _inline_schema(model)
    if not batch:
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": one}}}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": one}},
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "one JSON record per line"}
                },
            },
        }
    }


def _bearer_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    """The bearer credentials of ``Authorization``, as ``HTTPBearer(auto_error=False)`` reads them."""
    authorization = request.headers.get("authorization")
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if not (authorization and scheme and token) or scheme.lower() != "bearer":
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


def _http(exc: IngestError) -> HTTPException:
    """The one place ingest errors become HTTP responses."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return HTTPException(status_code=exc.status, detail=exc.body(), headers=headers)


def default_import_workers() -> int:
    """Worker processes for large batches and imports: one per CPU, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


def _outcome_dicts(outcomes: list[RowOutcome]) -> list[dict[str, Any]]:
    """``RowOutcome.as_dict()`` of each outcome; the accepted and duplicate ones without a call each."""
    stamps: dict[Any, str | None] = {None: None}
    out: list[dict[str, Any]] = []
    for o in outcomes:
        if o.errors:
            out.append(o.as_dict())
            continue
        stamp = stamps.get(o.accepted_at, _NO_STAMP)
        if stamp is _NO_STAMP:
            stamp = stamps[o.accepted_at] = o.accepted_at.isoformat()  # type: ignore[union-attr]
        out.append(
            {
                "row": o.row,
                "id": o.id,
                "status": o.status,
                "field": None,
                "reason": None,
                "errors": [],
                "accepted_at": stamp,
            }
        )
    return out


_NO_STAMP = "\0"


def _batch_body(kind: RecordKind, outcomes: list[RowOutcome], **extra: Any) -> dict[str, Any]:
    s = summarise(outcomes)
    return {
        "kind": kind.value,
        "total": s.total,
        "accepted": s.accepted,
        "duplicate": s.duplicate,
        "rejected": s.rejected,
        "outcomes": _outcome_dicts(outcomes),
        **extra,
    }


def _json_response(body: Any, status_code: int = 200) -> Response:
    """A JSON response serialised in one pass by pydantic-core (compact, UTF-8, like ``JSONResponse``)."""
    return Response(to_json(body), status_code=status_code, media_type="application/json")


def _json_rows(body: bytes, max_rows: int) -> list[RawRow]:
    try:
        text = body.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        # never replace undecodable bytes: the names of an accepted record would be mangled
        raise BadPayload(
            f"the body is not UTF-8 text (byte {exc.start} cannot be decoded); send JSON in UTF-8"
        ) from None
    if not text:
        raise BadPayload("the body is empty; send a JSON array or one JSON record per line")
    rows: list[RawRow]
    if text.startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: also a number too long to convert
            raise BadPayload(f"the body is not a JSON array: {exc}") from None
        rows = [RawRow(n, item) for n, item in enumerate(items, start=1)]
    else:
        rows = []
        for n, line in enumerate(json_lines(text), start=1):
            if not line.strip():
                continue
            try:
                rows.append(RawRow(n, json.loads(line)))
            except (ValueError, RecursionError) as exc:
                reason = f"line is not JSON: {getattr(exc, 'msg', exc)}"
                rows.append(RawRow(n, None, (FieldError("", reason, "invalid_json"),)))
    if len(rows) > max_rows:
        raise PayloadTooLarge(f"{len(rows)} records in one batch; at most {max_rows}")
    return rows


_KINDS = tuple(k.value for k in RecordKind)
_IMPORT_SPEC: dict[str, Any] = {
    "parameters": [
        {
            "name": "kind",
            "in": "query",
            "required": False,
            "description": "guessed from the headers if omitted",
            "schema": {"type": "string", "enum": list(_KINDS)},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (or tab-separated), XLSX or JSONL; wire-contract or "
                            "Chinese lab headers",
                        }
                    },
                }
            }
        },
    },
}


def _import_kind(value: str | None) -> RecordKind | None:
    if value is None or value == "":
        return None
    if value not in _KINDS:
        reason = f"'{value}' is not a kind of record; use {' or '.join(_KINDS)} (or leave it out to guess)"
        raise InvalidRequest(f"kind: {reason}", [FieldError("kind", reason, "enum")])
    return RecordKind(value)


async def _uploaded_file(request: Request) -> UploadFile:
    """The multipart form field ``file`` of ``request``, or :class:`InvalidRequest` naming the field."""
    try:  # a body that is not a form (a raw CSV) reads as an empty one
        form = await request.form(max_files=1)
    except HTTPException as exc:  # a multipart body that cannot be parsed
        raise BadPayload(f"the form cannot be read: {exc.detail}") from None
    file = form.get("file")
    if file is None:
        reason = "is required: upload the file as the multipart form field 'file' (multipart/form-data)"
        raise InvalidRequest(f"file: {reason}", [FieldError("file", reason, "missing")])
    if not isinstance(file, UploadFile):
        reason = "is a text field, not a file: upload the file itself as the form field 'file'"
        raise InvalidRequest(f"file: {reason}", [FieldError("file", reason, "not_a_file")])
    return file


def create_ingest_router(
    *,
    session_factory: Callable[[], Session],
    verify: Verifier,
    catalogue: Catalogue | None = None,
    clock: Clock = _utc_now,
    push_roles: frozenset[str] = PUSH_ROLES,
    max_batch_rows: int = 100_000,
    max_upload_bytes: int = 64 * 1024 * 1024,
    on_accepted: Callable[[], None] | None = None,
    import_workers: int | None = None,
) -> APIRouter:
    """The ingest routes over ``session_factory`` (a ``sessionmaker``), authenticated by ``verify``.

    ``on_accepted`` is called after a commit that accepted at least one record (wake the relay).
    Batches and imports of more than one chunk are validated on ``import_workers`` worker processes
    (default :func:`default_import_workers`; 0 validates in the request's thread).
    Single records go through a :class:`~stream.ingest.writer.GroupWriter` (group commit); the token
    is verified on the event loop, so ``verify`` should be quick (an indexed lookup).
    """
    cat = catalogue or default_catalogue()
    workers = default_import_workers() if import_workers is None else import_workers
    router = APIRouter(tags=["ingest"])

    def authorise(credentials: HTTPAuthorizationCredentials | None) -> Principal:
        if credentials is None or not credentials.credentials:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        principal = verify(credentials.credentials)
        if principal is None:
            raise Unauthenticated("the bearer token is unknown, revoked or expired")
        if principal.role not in push_roles:
            raise Forbidden(
                f"role '{principal.role}' may not push records (allowed: {', '.join(sorted(push_roles))})"
            )
        if principal.region is not None and cat.region(principal.region) is None:
            raise Forbidden(
                f"the token is scoped to county '{principal.region}', which the catalogue does not know"
            )
        return principal

    def accepted_hook(outcomes: list[RowOutcome]) -> None:
        if on_accepted is not None and any(o.status == "accepted" for o in outcomes):
            on_accepted()

    writer = GroupWriter(session_factory=session_factory, catalogue=cat, clock=clock, on_accepted=on_accepted)

    async def one(
        kind: RecordKind, credentials: HTTPAuthorizationCredentials | None, body: bytes
    ) -> Response:
        principal = authorise(credentials)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # decoding, syntax, a number too long to convert
            raise BadPayload(f"the body is not JSON: {exc}") from None
        outcome = await writer.submit(
            kind=kind, data=data, submitted_by=principal.name, scope_region=principal.region
        )
        if outcome.status == "rejected":
            first = outcome.errors[0]
            if outcome.out_of_scope:
                raise Forbidden(first.reason, outcome.errors, id=outcome.id)
            if outcome.conflict:
                raise Conflict(first.reason, outcome.errors, id=outcome.id)
            raise Rejected(f"record refused: {first}", outcome.errors, id=outcome.id)
        return _json_response(outcome.as_dict(), status_code=201 if outcome.status == "accepted" else 200)

    def many(
        kind: RecordKind,
        principal: Principal,
        rows: list[RawRow] | Iterator[RawRow] | ChunkedRows,
        **extra: Any,
    ) -> Response:
        with session_factory() as session:
            outcomes = submit_many(
                session,
                kind=kind,
                rows=rows,
                catalogue=cat,
                clock=clock,
                submitted_by=principal.name,
                scope_region=principal.region,
                on_chunk=accepted_hook,
                workers=workers,
            )
        return _json_response(_batch_body(kind, outcomes, **extra))

    async def run(fn: Callable[..., Response], *args: Any) -> Response:
        try:
            return await run_in_threadpool(fn, *args)
        except IngestError as exc:
            raise _http(exc) from None

    def add_single(path: str, kind: RecordKind, model: type[BaseModel], summary: str) -> None:
        # the hot path: the bearer token is read here rather than through a dependency (same rules as
        # HTTPBearer(auto_error=False)); the operation still declares the HTTPBearer scheme
        async def endpoint(request: Request) -> Response:
            try:
                return await one(kind, _bearer_credentials(request), await request.body())
            except IngestError as exc:
                raise _http(exc) from None

        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            summary=summary,
            status_code=201,
            openapi_extra={**_body_spec(model, False), "security": [{_bearer.scheme_name: []}]},
            responses={
                201: {"model": OutcomeOut, "description": "accepted"},
                200: {"model": OutcomeOut, "description": "duplicate: accepted before with the same content"},
                409: {
                    "model": ErrorOutBody,
                    "description": "the id was accepted before with different content",
                },
                422: {"model": ErrorOutBody, "description": "the record is invalid (field and reason)"},
                **_ERRORS,
            },
            name=f"submit_{kind.value}",
        )

    def add_batch(path: str, kind: RecordKind, model: type[BaseModel], summary: str) -> None:
        async def endpoint(request: Request, credentials: Creds) -> Response:
            body = await request.body()

            def work() -> Response:
                principal = authorise(credentials)
                return many(kind, principal, _json_rows(body, max_batch_rows))

            return await run(work)

        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            summary=summary,
            openapi_extra=_body_spec(model, True),
            responses={200: {"model": BatchOut, "description": "one outcome per record"}, **_ERRORS},
            name=f"submit_{kind.value}_batch",
        )

    add_single("/api/v1/sampling-results", RecordKind.sampling, SamplingResult, "Submit one sampling result")
    add_single("/api/v1/patrol-reports", RecordKind.patrol, PatrolReport, "Submit one patrol report")
    add_batch(
        "/api/v1/sampling-results:batch",
        RecordKind.sampling,
        SamplingResult,
        "Submit sampling results (JSON array or JSONL)",
    )
    add_batch(
        "/api/v1/patrol-reports:batch",
        RecordKind.patrol,
        PatrolReport,
        "Submit patrol reports (JSON array or JSONL)",
    )

    @router.post(
        "/api/v1/imports",
        summary="Import a CSV or XLSX file of sampling results or patrol reports",
        response_model=BatchOut,
        responses={**_ERRORS, 422: {"model": ErrorOutBody, "description": "no file, or an unknown kind"}},
        openapi_extra=_IMPORT_SPEC,
    )
    async def import_file(request: Request, credentials: Creds) -> Response:
        # the query and the form are read here, not by FastAPI: its 422 would not have ingest's shape
        try:
            authorise(credentials)
            kind = _import_kind(request.query_params.get("kind"))
            file = await _uploaded_file(request)
        except IngestError as exc:
            raise _http(exc) from None
        content = await file.read(max_upload_bytes + 1)
        filename = file.filename

        def work() -> Response:
            principal = authorise(credentials)
            if len(content) > max_upload_bytes:
                raise PayloadTooLarge(f"the file is larger than {max_upload_bytes} bytes")
            try:
                table = parse_table(content, filename=filename, kind=kind, catalogue=cat)
                rows = table.row_count()
                if rows is not None and rows > max_batch_rows:
                    # counted before any row is stored: a file too large is refused whole, never half-imported
                    raise PayloadTooLarge(f"{rows} rows in the file; at most {max_batch_rows} in one import")
                return many(
                    table.kind,
                    principal,
                    table,
                    format=table.format,
                    ignored_columns=table.ignored_columns,
                )
            except TableError as exc:
                raise BadPayload(f"file: {exc}", [FieldError("file", str(exc), "unreadable_file")]) from None

        return await run(work)

    return router
