"""The HTTP application: routers of every domain, the one error mapping, health, metrics, live stream.

``create_app(runtime)`` builds it; with ``background=True`` (what ``qualitywatch alerts serve``
uses) it also runs the periodic tick, the warnings consumer and the cell-weeks consumer while it is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Index, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.schema import ColumnCollectionConstraint

from .alert.views import router as alert_router
from .audit.views import router as audit_router
from .auth.service import authenticate, require
from .auth.views import router as auth_router
from .dashboard.views import router as dashboard_router
from .db import Base
from .deps import Rt
from .errors import AlertServiceError, Conflict
from .events import Event
from .incident.views import router as incident_router
from .inputs import RefuseNulText
from .route.views import router as route_router
from .runtime import Runtime
from .silence.views import router as silence_router
from .stats.views import router as stats_router

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _error(status: int, code: str, field: str | None, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "field": field, "message": message}, **extra}
    )


def _install_error_mapping(app: FastAPI) -> None:
    """The one place where exceptions become HTTP answers."""

    @app.exception_handler(AlertServiceError)
    async def _service_error(_: Request, exc: AlertServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(status_code=exc.status_code, content=exc.body(), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(e["loc"], e["type"]), "reason": _reason(e), "type": e["type"]}
            for e in exc.errors()
        ]
        field, reason = (errors[0]["field"], errors[0]["reason"]) if errors else (None, "invalid request")
        return _error(422, "invalid", field, reason, errors=errors)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        conflict = _unique_conflict(exc)
        if conflict is not None:
            return await _service_error(request, conflict)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(
            500,
            "internal",
            None,
            f"unexpected {exc.__class__.__name__} while handling "
            f"{request.method} {request.url.path}; see the service log",
        )


def _unique_conflict(exc: IntegrityError) -> Conflict | None:
    """A unique key another request stored between this one's check and its write, as a 409 naming
    the key's columns; ``None`` for any other integrity error (a bug, answered 500)."""
    orig = exc.orig
    columns: list[str] = []
    table = ""
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        name = getattr(getattr(orig, "diag", None), "constraint_name", None)
        for t in Base.metadata.tables.values():
            keys: list[ColumnCollectionConstraint | Index] = [
                c for c in t.constraints if isinstance(c, ColumnCollectionConstraint)
            ]
            keys.extend(t.indexes)
            for key in keys:
                if key.name == name:
                    table, columns = t.name, [c.name for c in key.columns]
    elif str(orig).startswith("UNIQUE constraint failed: "):  # SQLite
        spec = str(orig).removeprefix("UNIQUE constraint failed: ")
        pairs = [part.strip().partition(".") for part in spec.split(",")]
        table, columns = pairs[0][0], [column for _, _, column in pairs]
    if not columns:
        return None
    what = ", ".join(columns)
    return Conflict(
        f"another request stored a {table} row with the same {what} at the same time; retry to see it",
        field=what,
    )


def _field(loc: Sequence[Any], kind: str) -> str:
    """The field a validation error is about: its path in the JSON body (``body`` for the body as a
    whole, or JSON that does not parse), or ``query.…`` / ``path.…`` / ``header.…``."""
    if not loc or loc[0] != "body":
        return ".".join(str(p) for p in loc)
    if kind == "json_invalid" or len(loc) == 1:
        return "body"
    return ".".join(str(p) for p in loc[1:])


def _reason(error: Mapping[str, Any]) -> str:
    loc, kind = tuple(error["loc"]), error["type"]
    if kind == "json_invalid":
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        cause = (error.get("ctx") or {}).get("error")
        return f"not valid JSON{where}" + (f": {cause}" if cause else "")
    if loc == ("body",) and kind == "missing":
        return "a JSON body is required"
    return str(error["msg"])


def _sse(event: Event) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.data, ensure_ascii=False)}\n\n"


def create_app(runtime: Runtime, *, background: bool = False) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        stop = threading.Event()
        threads: list[threading.Thread] = []
        if background:
            tasks.append(asyncio.create_task(_tick_loop(runtime)))
            if runtime.settings.consume:
                from .consumer import run_consumer

                threads.append(
                    threading.Thread(
                        target=run_consumer,
                        kwargs={"runtime": runtime, "stop": stop},
                        name="qw-warnings",
                        daemon=True,
                    )
                )
            if runtime.settings.consume and runtime.settings.consume_cell_weeks:
                from .stats.consumer import run_stats_consumer

                threads.append(
                    threading.Thread(
                        target=run_stats_consumer,
                        kwargs={"runtime": runtime, "stop": stop},
                        name="qw-cell-weeks",
                        daemon=True,
                    )
                )
            for thread in threads:
                thread.start()
        try:
            yield
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            for thread in threads:
                thread.join(timeout=10)

    app = FastAPI(
        title="QualityWatch alert service",
        version="0.1.0",
        description="Alerts, silences, routes, notifications, incidents and audit for duty officers and "
        "emergency response teams.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    _install_error_mapping(app)
    app.add_middleware(RefuseNulText)
    for router in (
        alert_router, silence_router, route_router, incident_router, audit_router, auth_router, stats_router
    ):
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    def healthz(rt: Rt) -> dict[str, str]:
        with rt.session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics(rt: Rt) -> Response:
        assert rt.metrics is not None
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/events", tags=["ops"], response_class=StreamingResponse)
    async def events(
        request: Request,
        rt: Rt,
        authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
        access_token: Annotated[str | None, Query(description="token, for EventSource clients")] = None,
    ) -> StreamingResponse:
        """Server-sent events: ``alert.created``, ``alert.updated``, ``incident.updated`` … as they commit."""
        header = authorization or (f"Bearer {access_token}" if access_token else None)
        with rt.session() as session:  # a short session: the stream itself holds no connection
            principal = authenticate(session, authorization=header)
        require(principal, "alerts:read")
        queue = rt.bus.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                while not await request.is_disconnected():
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event.readable_by(principal.county):
                        yield _sse(event)
            finally:
                rt.bus.unsubscribe(queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    app.include_router(dashboard_router)
    return app


async def _tick_loop(runtime: Runtime) -> None:
    while True:
        try:
            await asyncio.to_thread(runtime.tick)
        except Exception:  # the loop must survive a bad tick; the error is logged with its cause
            log.exception("periodic tick failed")
        await asyncio.sleep(runtime.settings.tick_interval_s)
