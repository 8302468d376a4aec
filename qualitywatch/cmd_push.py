"""``qualitywatch push FILE|-``: send JSONL records to the input topics (kafka-python, acks=all).

Sampling results go to ``qw.sampling-results`` and patrol reports (lines with ``patrolled_at``) to
``qw.patrol-reports``, keyed by region. Lines are sent as they are; the worker validates them and
dead-letters the bad ones. Lines that are obviously bad are reported here too.
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import click

__all__ = ["command"]


@click.command("push")
@click.argument("source", type=click.File("rb"))
@click.option("--bootstrap", "bootstrap_servers", help="Kafka bootstrap servers (QW_BOOTSTRAP_SERVERS).")
@click.option("--topic", help="Send every line to this topic instead of choosing by record type.")
@click.option("--topic-prefix", help="Prefix of every topic name (QW_TOPIC_PREFIX).")
def command(
    source: BinaryIO, bootstrap_servers: str | None, topic: str | None, topic_prefix: str | None
) -> None:
    """Push the records of SOURCE (a JSONL file, or - for standard input)."""
    from kafka.errors import KafkaError

    from qualitywatch.settings import stream_settings
    from stream.producer import RecordPusher

    overrides: dict[str, Any] = {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix}
    settings = stream_settings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        pusher = RecordPusher(settings)
    except KafkaError as exc:
        raise click.ClickException(f"cannot reach the broker at {settings.bootstrap_servers}: {exc}") from exc
    with pusher:
        report = pusher.push_lines(source, topic=topic)
        pusher.flush(None)  # every delivery settled: the failures are all in the report
    failed = {n for n, _ in report.failed}
    for line, problem in report.problems[:50]:
        sent = "not sent" if line in failed else "sent; the worker will dead-letter it"
        click.echo(f"line {line}: {problem} ({sent})", err=True)
    if len(report.problems) > 50:
        click.echo(f"... and {len(report.problems) - 50} more bad lines", err=True)
    for line, reason in sorted(report.failed)[:50]:
        click.echo(f"line {line}: {reason}", err=True)
    if len(report.failed) > 50:
        click.echo(f"... and {len(report.failed) - 50} more lines not sent", err=True)
    per = ", ".join(f"{t}: {n}" for t, n in sorted(report.by_topic.items()))
    if report.failed:
        click.echo(f"sent {report.sent - len(report.failed)} of {report.sent} records ({per})", err=True)
    else:
        click.echo(f"sent {report.sent} records ({per})", err=True)
    sys.exit(1 if report.problems or report.failed else 0)
