"""Reading a topic back from its beginning (tests, benchmarks, inspection tools).

Reads until the topic has been quiet for ``idle_s`` seconds, so it does not depend on the broker's
reported end offsets (the embedded broker reports them wrongly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .settings import StreamSettings

__all__ = ["Message", "read_topic"]


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def read_topic(
    settings: StreamSettings, topic: str, idle_s: float = 1.0, timeout_s: float = 60.0
) -> list[Message]:
    """Every message of ``topic`` (all partitions, in partition then offset order)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **settings.client_kwargs(),
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=100,
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 10
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Message] = []
        quiet_since = time.monotonic()
        end = time.monotonic() + timeout_s
        while time.monotonic() - quiet_since < idle_s and time.monotonic() < end:
            batch = consumer.poll(timeout_ms=200)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(Message(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp))
            if batch:
                quiet_since = time.monotonic()
        out.sort(key=lambda m: (m.partition, m.offset))
        return out
    finally:
        consumer.close()
