"""``qualitywatch worker``: one stream worker (the faust app with the checkpointed detection consumer).

Settings come from ``QW_*`` environment variables (:class:`stream.settings.StreamSettings`); the
options here override the most common ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

__all__ = ["command", "run_worker"]


def run_worker(overrides: dict[str, Any], loglevel: str = "info") -> None:
    """Build the settings and the faust app and run it until SIGINT/SIGTERM (settings that cannot be
    used end it at once, with one line naming each variable)."""
    from faust.worker import Worker

    from qualitywatch.settings import stream_settings
    from stream.app import create_app
    from stream.checkpoint import CheckpointStoreError

    settings = stream_settings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        app = create_app(settings)
    except CheckpointStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    worker = Worker(app, loglevel=loglevel, quiet=True)
    detection = app.qw_detection  # type: ignore[attr-defined]
    stopping: list[asyncio.Future[None]] = []
    # a checkpoint the worker must not restore (logged in one line): stop as on SIGTERM, exit status 1
    detection.on_refused = lambda: stopping.append(asyncio.ensure_future(worker.stop()))
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if detection.refused is not None:
            raise SystemExit(1) from None
        raise


@click.command("worker")
@click.option("--bootstrap", "bootstrap_servers", help="Kafka bootstrap servers (QW_BOOTSTRAP_SERVERS).")
@click.option("--epoch", help="First week watched, a Monday 00:00 with offset (QW_EPOCH).")
@click.option("--checkpoint-url", help="SQLAlchemy URL of the checkpoint store (QW_CHECKPOINT_URL).")
@click.option("--web-port", type=int, help="Port of the web server with /metrics (QW_WEB_PORT).")
@click.option("--topic-prefix", help="Prefix of every topic name (QW_TOPIC_PREFIX).")
@click.option("--loglevel", default="info", show_default=True)
def command(loglevel: str, **overrides: Any) -> None:
    """Run a stream worker: detection on qw.sampling-results / qw.patrol-reports -> qw.warnings."""
    run_worker(overrides, loglevel)
