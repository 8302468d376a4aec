"""Putting records onto the input topics with kafka-python (``acks=all``), keyed by region.

Lines are sent as they are: the worker validates and dead-letters what is wrong. Lines that are
obviously wrong here (not JSON, no region) are still reported to the caller, line by line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .settings import StreamSettings
from .topics import Topics

__all__ = ["PushReport", "RecordPusher", "classify_line", "pusher_config"]


@dataclass
class PushReport:
    sent: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    #: (line number, reason) for lines that will not pass the worker's validation
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: (line number, reason) for lines the broker did not get (the producer refused them or their
    #: delivery failed); complete once the producer is flushed. ``sent`` counts them too.
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: (topic, partition) -> offset after the last record sent there (filled by ``wait=True``)
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def classify_line(line: bytes) -> tuple[str | None, str | None, str | None]:
    """(kind 'sampling'|'patrol'|None, region key or None, problem or None) of one JSONL line."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, None, f"invalid JSON: {exc}"
    except RecursionError:
        return None, None, "invalid JSON: nested too deeply"
    except ValueError:  # the only other one: an integer longer than Python converts
        return None, None, f"invalid JSON: a number of more than {sys.get_int_max_str_digits()} digits"
    if not isinstance(data, dict):
        return None, None, "not a JSON object"
    kind = "patrol" if "patrolled_at" in data else "sampling"
    region = data.get("region")
    if not isinstance(region, str) or not region:
        return kind, None, "region: is required (it is the message key)"
    return kind, region, None


def _why(exc: BaseException) -> str:
    return f"not sent: {type(exc).__name__}: {exc}"


def pusher_config(settings: StreamSettings, **producer_kwargs: Any) -> dict[str, Any]:
    """What the kafka-python producer of :class:`RecordPusher` is built with (``producer_kwargs`` win)."""
    kw = settings.client_kwargs()
    kw.update(acks="all", linger_ms=5, batch_size=64 * 1024, retries=5)
    if settings.enable_idempotence:
        kw["enable_idempotence"] = True
    kw.update(producer_kwargs)
    return kw


class RecordPusher:
    """A kafka-python producer for the input topics (a context manager)."""

    def __init__(self, settings: StreamSettings, **producer_kwargs: Any) -> None:
        from kafka import KafkaProducer

        self.topics = Topics.from_settings(settings)
        self._producer = KafkaProducer(**pusher_config(settings, **producer_kwargs))

    def send_raw(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> Any:
        """Send one message as it is; the kafka-python future of its record metadata."""
        return self._producer.send(topic, value=value, key=key, partition=partition)

    def push_lines(self, lines: Iterable[bytes], topic: str | None = None, wait: bool = False) -> PushReport:
        """Send each non-blank line to its topic (``topic`` forces one), keyed by its region.

        With ``wait`` the call returns once every record is acknowledged, with the end offsets.
        """
        from kafka.errors import KafkaError

        report = PushReport()
        futures = []
        for n, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line:
                continue
            kind, region, problem = classify_line(line)
            if problem:
                report.problems.append((n, problem))
            name = topic or (self.topics.patrols if kind == "patrol" else self.topics.sampling)
            report.sent += 1
            report.by_topic[name] = report.by_topic.get(name, 0) + 1
            try:
                fut = self._producer.send(name, value=line, key=region.encode() if region else None)
            except KafkaError as exc:  # refused before sending (too large, ...): the next lines still go
                report.failed.append((n, _why(exc)))
                continue
            # a failed delivery is reported when the producer is flushed (the sender thread calls it)
            fut.add_errback(lambda exc, n=n: report.failed.append((n, _why(exc))))
            if wait:
                futures.append(fut)
        if wait:
            self._producer.flush()
            for fut in futures:
                if fut.failed():
                    continue
                md = fut.get(timeout=60)
                key = (md.topic, md.partition)
                report.end_offsets[key] = max(report.end_offsets.get(key, 0), md.offset + 1)
            report.failed.sort()
        return report

    def flush(self, timeout: float | None = 60.0) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> RecordPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
