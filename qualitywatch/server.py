"""The HTTP front door: one FastAPI app that mounts the ingest routes (OpenAPI at ``/docs``).

``create_app()`` assembles it from settings: the ingest store and its outbox relay (started with the
app, stopped with it), and the token verifier. By default tokens are checked against the alert
service's token store (``qualitywatch token create --role inspector [--county …]`` issues them), so
one token works for both services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session

from schemas import default_catalogue, load_catalogue
from stream.ingest import IngestSettings, OutboxRelay, Principal, Verifier, create_ingest_router, open_store
from stream.ingest.metrics import ingest_registry
from stream.settings import StreamSettings
from stream.topics import Topics

__all__ = ["alert_token_verifier", "create_app"]


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


def create_app(
    *,
    settings: IngestSettings | None = None,
    stream_settings: StreamSettings | None = None,
    verify: Verifier | None = None,
    relay: bool | None = None,
) -> FastAPI:
    """The app; ``relay`` (default: ``settings.relay_enabled``) runs the outbox relay alongside it."""
    settings = settings or IngestSettings()
    stream_settings = stream_settings or StreamSettings()
    catalogue = load_catalogue(settings.catalogue_path) if settings.catalogue_path else default_catalogue()
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

    app.include_router(
        create_ingest_router(
            session_factory=sessions,
            verify=verify or _default_verifier(),
            catalogue=catalogue,
            max_batch_rows=settings.max_batch_rows,
            max_upload_bytes=settings.max_upload_bytes,
            on_accepted=outbox_relay.wake if outbox_relay is not None else None,
        )
    )
    return app
