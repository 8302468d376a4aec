"""Fixtures for tests against the real embedded broker (Tansu), shared by the stream tests.

One broker per test session; each test gets its own topic prefix, consumer group and checkpoint
database, so tests do not see each other's data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stream.broker import EmbeddedBroker
from stream.settings import StreamSettings
from stream.testing import WorkerProc

EPOCH = datetime(2021, 1, 4, tzinfo=ZoneInfo("Asia/Shanghai"))
CUTOFF = "2021-04-05"  # 13 weeks of simulated sampling


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@dataclass(frozen=True)
class StreamData:
    sampling: list[bytes]
    patrols: list[bytes]


@pytest.fixture(scope="session")
def stream_data() -> StreamData:
    """13 weeks of simulated records (with resubmitted duplicates) and patrol reports, as JSON lines."""
    from qualitywatch.evaluation import SimConfig, simulate

    sim = simulate(SimConfig(seed=3, years=2))
    sampling = [json.dumps(r).encode() for r in sim.records if r["sampled_at"] < CUTOFF]
    patrols = [json.dumps(r).encode() for r in sim.patrols if r["patrolled_at"] < CUTOFF]
    return StreamData(sampling, patrols)


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> StreamSettings:
    tag = uuid.uuid4().hex[:8]
    return StreamSettings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"t{tag}.",
        group_id=f"g{tag}",
        app_id=f"qw{tag}",
        epoch=EPOCH,
        checkpoint_url=f"sqlite:///{tmp_path / 'checkpoints.db'}",
        checkpoint_interval_s=0.5,
        web_enabled=False,
    )


@pytest.fixture
def start_worker(settings: StreamSettings, tmp_path: Path) -> Iterator[Any]:
    """A factory of started worker processes; every one is stopped at the end of the test."""
    started: list[WorkerProc] = []

    def make() -> WorkerProc:
        w = WorkerProc(settings, tmp_path / f"worker{len(started)}.log")
        started.append(w)
        return w.start()

    yield make
    for w in started:
        w.stop()
