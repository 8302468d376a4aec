"""``qualitywatch serve``: the whole HTTP side in one process, on one port.

The alert service (API, dashboard at ``/dashboard/``, live stream, warnings and cell-weeks consumers,
escalation tick) and the ingest API with its outbox relay, OpenAPI at ``/docs``. Settings come from
``QW_*`` environment variables (``alerts.AlertSettings``, ``stream.ingest.IngestSettings``,
``stream.settings.StreamSettings``); the options override the most common ones.
"""

from __future__ import annotations

import click

__all__ = ["GRACEFUL_SHUTDOWN_S", "command"]

#: seconds a stopping server waits for open connections (live streams) before closing them
GRACEFUL_SHUTDOWN_S = 5


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default QW_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default QW_PORT, 8000).")
@click.option("--no-consume", is_flag=True, help="Do not read the warnings and cell-weeks topics.")
@click.option("--no-relay", is_flag=True, help="Keep accepted records in the outbox (no relay to Kafka).")
@click.option(
    "--ingest-database-url",
    default=None,
    help="SQLAlchemy URL of the ingest outbox (default QW_DATABASE_URL, else sqlite:///qualitywatch.db).",
)
@click.option("--log-level", default="info", show_default=True)
def command(
    host: str | None,
    port: int | None,
    no_consume: bool,
    no_relay: bool,
    ingest_database_url: str | None,
    log_level: str,
) -> None:
    """Serve the alert service, the dashboard and the ingest API on one port (OpenAPI at /docs)."""
    import gc

    import uvicorn

    from alerts import build_runtime
    from qualitywatch.server import create_platform_app
    from qualitywatch.settings import alert_settings as load_alert_settings
    from qualitywatch.settings import ingest_settings as load_ingest_settings
    from qualitywatch.settings import stream_settings as load_stream_settings

    # every setting is checked before anything is touched (the database, the broker)
    alert_settings = load_alert_settings(**({"consume": False} if no_consume else {}))
    ingest_settings = load_ingest_settings(
        **({"database_url": ingest_database_url} if ingest_database_url else {})
    )
    stream_settings = load_stream_settings()
    runtime = build_runtime(alert_settings)
    app = create_platform_app(
        runtime=runtime,
        settings=ingest_settings,
        stream_settings=stream_settings,
        relay=False if no_relay else None,
        background=True,
    )
    # what exists now (modules, the app) lives as long as the process: keep it out of full collections
    gc.freeze()
    uvicorn.run(
        app,
        host=host or alert_settings.host,
        port=port or alert_settings.port,
        log_level=log_level,
        # open dashboards hold a live stream: stop waiting for them after a while, then shut down
        # the relay and the consumers cleanly
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
