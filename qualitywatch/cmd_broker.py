"""``qualitywatch broker``: the embedded development broker (Tansu) on loopback until Ctrl-C/SIGTERM."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

__all__ = ["command"]


@click.command("broker")
@click.option(
    "--port", type=int, default=9092, show_default=True, help="Port to listen on (0: any free port)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def command(port: int, host: str) -> None:
    """Start the embedded Kafka-compatible broker, wait until it answers, stop it cleanly on Ctrl-C.

    For development and tests only: it keeps everything in memory (see docs/stream.md).
    """
    from stream.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker(port=port, host=host)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        broker.start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"broker ready at {broker.bootstrap} (pid {broker.pid}); Ctrl-C to stop", err=True)
    sys.stdout.flush()
    try:
        status = broker.wait()
        raise click.ClickException(f"broker exited unexpectedly with status {status}")
    except KeyboardInterrupt:
        click.echo("stopping broker", err=True)
    finally:
        broker.stop()
