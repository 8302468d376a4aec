"""The HTTP front door: the ingest API alone, or the whole platform on one port (OpenAPI at ``/docs``).

* ``create_app()`` assembles the ingest API from settings: the ingest store and its outbox relay
  (started with the app, stopped with it), and the token verifier. By default tokens are checked
  against the alert service's token store (``qualitywatch alerts token create --name … --role
  inspector [--county …]`` issues them), so one token works for both services.
* ``create_platform_app()`` (what ``qualitywatch serve`` runs) is the alert service — API, dashboard,
  live stream, warnings and cell-weeks consumers, periodic tick — with the ingest routes and the outbox
  relay added: one process, one port, one token store, one reference catalogue (the one the alert
  service loaded, ``QW_CATALOGUE_PATH``). Each API keeps its own error bodies: ingest answers
  ``{"detail": …}`` on its routes, the alert service ``{"error": …}`` on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response as StarletteResponse

from schemas import Catalogue, FieldError, load_catalogue
from stream.ingest import (
    IngestSettings,
    InvalidRequest,
    OutboxRelay,
    Principal,
    Verifier,
    create_ingest_router,
    load_ingest_settings,
    open_store,
)
from stream.ingest.metrics import RECORDS, OutboxCollector, ingest_registry
from stream.settings import StreamSettings, load_stream_settings
from stream.topics import Topics

if TYPE_CHECKING:
    from alerts.runtime import Runtime
    from alerts.settings import AlertSettings

__all__ = [
    "INGEST_PREFIX",
    "IngestParts",
    "alert_token_verifier",
    "build_ingest",
    "create_app",
    "create_platform_app",
]

#: where the ingest routes live (``/api/v1/…``); the alert service's routes are elsewhere under ``/api``
INGEST_PREFIX = "/api/v1/"


def alert_token_verifier(session_factory: Callable[[], Session]) -> Verifier:
    """A verifier over the alert service's hashed token store (roles and county scope carried over)."""
    from alerts.auth.service import authenticate
    from alerts.errors import Unauthorized

    def verify(token: str) -> Principal | None:
        with session_factory() as session:
            try:
                p = authenticate(session, authorization=f"Bearer {token}")
            except Unauthorized:
                return None
        return Principal(name=p.name, role=p.role.value, region=p.county)

    return verify


def _default_verifier() -> Verifier:
    from alerts.db import make_engine, make_session_factory, migrate
    from alerts.settings import load_settings

    engine = make_engine(load_settings().database_url)
    migrate(engine)
    return alert_token_verifier(make_session_factory(engine))


@dataclass(frozen=True)
class IngestParts:
    """The ingest side of a server: its store, its router and its outbox relay (when it runs one)."""

    sessions: sessionmaker[Session]
    router: APIRouter
    relay: OutboxRelay | None


def build_ingest(
    *,
    settings: IngestSettings,
    stream_settings: StreamSettings,
    verify: Verifier,
    relay: bool | None = None,
    catalogue: Catalogue | None = None,
) -> IngestParts:
    """The ingest store, routes and relay from settings; ``relay`` defaults to ``settings.relay_enabled``,
    ``catalogue`` to the one of ``settings.catalogue_path``."""
    if catalogue is None:
        catalogue = load_catalogue(settings.catalogue_path or None)  # unset: the packaged one
    sessions = open_store(settings.database_url)
    topics = Topics.from_settings(stream_settings)
    outbox_relay = None
    if settings.relay_enabled if relay is None else relay:
        outbox_relay = OutboxRelay(
            session_factory=sessions,
            bootstrap_servers=stream_settings.bootstrap_servers,
            sampling_topic=topics.sampling,
            patrol_topic=topics.patrols,
            producer_config={
                k: v for k, v in stream_settings.client_kwargs().items() if k != "bootstrap_servers"
            },
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            backoff_initial_s=settings.relay_backoff_initial_s,
            backoff_max_s=settings.relay_backoff_max_s,
        )
    router = create_ingest_router(
        session_factory=sessions,
        verify=verify,
        catalogue=catalogue,
        max_batch_rows=settings.max_batch_rows,
        max_upload_bytes=settings.max_upload_bytes,
        on_accepted=outbox_relay.wake if outbox_relay is not None else None,
    )
    return IngestParts(sessions=sessions, router=router, relay=outbox_relay)


def create_app(
    *,
    settings: IngestSettings | None = None,
    stream_settings: StreamSettings | None = None,
    verify: Verifier | None = None,
    relay: bool | None = None,
) -> FastAPI:
    """The ingest API; ``relay`` (default: ``settings.relay_enabled``) runs the outbox relay alongside it."""
    parts = build_ingest(
        settings=settings or load_ingest_settings(),
        stream_settings=stream_settings or load_stream_settings(),
        verify=verify or _default_verifier(),
        relay=relay,
    )
    outbox_relay = parts.relay
    sessions = parts.sessions

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if outbox_relay is not None:
            outbox_relay.start()
        try:
            yield
        finally:
            if outbox_relay is not None:
                outbox_relay.stop()

    app = FastAPI(title="QualityWatch", version="0.1.0", lifespan=lifespan)
    registry = ingest_registry(sessions)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(parts.router)
    return app


def create_platform_app(
    *,
    runtime: Runtime | None = None,
    alert_settings: AlertSettings | None = None,
    settings: IngestSettings | None = None,
    stream_settings: StreamSettings | None = None,
    background: bool = True,
    relay: bool | None = None,
) -> FastAPI:
    """The alert service and the ingest API in one app, sharing the alert service's token store and
    reference catalogue (the runtime's, loaded from ``QW_CATALOGUE_PATH``).

    ``runtime`` defaults to one built from ``alert_settings`` (default: the environment), migrated.
    With ``background`` the alert service's tick and consumers run while the app is up; the outbox
    relay runs when ``relay`` (default: ``settings.relay_enabled``) says so. Both start and stop with
    the app's lifespan.
    """
    from alerts import build_runtime, load_settings
    from alerts.api import create_app as create_alert_app

    if runtime is None:
        runtime = build_runtime(alert_settings or load_settings())
    app = create_alert_app(runtime, background=background)
    app.title = "QualityWatch"
    app.description = (
        "Inspectors push sampling results and patrol reports (ingest, `/api/v1/…`); duty officers and "
        "emergency response teams work their alerts, silences, routes, incidents and statistics "
        "(`/api/…`, dashboard at `/dashboard/`). One bearer token store for both."
    )
    parts = build_ingest(
        settings=settings or load_ingest_settings(),
        stream_settings=stream_settings or load_stream_settings(),
        verify=alert_token_verifier(runtime.session_factory),
        relay=relay,
        catalogue=runtime.catalogue,
    )
    app.include_router(parts.router)
    _keep_ingest_validation_errors(app)
    assert runtime.metrics is not None
    runtime.metrics.registry.register(RECORDS)
    runtime.metrics.registry.register(OutboxCollector(parts.sessions))

    alert_lifespan = app.router.lifespan_context
    outbox_relay = parts.relay

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with alert_lifespan(a):
            if outbox_relay is not None:
                outbox_relay.start()
            try:
                yield
            finally:
                if outbox_relay is not None:
                    outbox_relay.stop()

    app.router.lifespan_context = lifespan
    return app


def _keep_ingest_validation_errors(app: FastAPI) -> None:
    """Request-validation errors on ingest routes answer in ingest's documented shape
    (``{"detail": {"error", "message", "errors"}}``); everywhere else the alert service's mapping
    answers. (The ingest routes read their own input, so none raises one today.)"""
    alert_handler = app.exception_handlers[RequestValidationError]

    async def invalid(request: Request, exc: Exception) -> StarletteResponse:
        if request.url.path.startswith(INGEST_PREFIX):
            assert isinstance(exc, RequestValidationError)
            errors = [
                FieldError(".".join(str(part) for part in e["loc"]), str(e["msg"]), str(e["type"]))
                for e in exc.errors()
            ]
            body = InvalidRequest(str(errors[0]) if errors else "invalid request", errors).body()
            return JSONResponse(status_code=422, content={"detail": body})
        response: StarletteResponse = await alert_handler(request, exc)  # type: ignore[misc]
        return response

    app.add_exception_handler(RequestValidationError, invalid)
