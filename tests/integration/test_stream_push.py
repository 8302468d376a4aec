"""``qualitywatch push`` reports every line the broker did not get, by number, and keeps going."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import StreamData

from stream.broker import EmbeddedBroker, free_port
from stream.producer import RecordPusher
from stream.readback import read_topic
from stream.settings import StreamSettings
from stream.testing import settings_env

pytestmark = pytest.mark.integration


def _push(settings: StreamSettings, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from qualitywatch.cli import main; main()", "push", str(path)],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_line_the_producer_refuses_is_reported_by_number_and_the_rest_are_sent(
    settings: StreamSettings, stream_data: StreamData, tmp_path: Path
) -> None:
    good = stream_data.sampling[:10]
    too_large = dict(json.loads(good[0]), id="too-large", product="x" * 1_200_000)  # above 1 MiB
    lines = [*good[:5], b"not json", json.dumps(too_large).encode(), *good[5:]]
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    done = _push(settings, path)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "line 6: invalid JSON" in done.stderr
    assert "line 7: not sent: MessageSizeTooLargeError" in done.stderr
    assert f"sent {len(good) + 1} of {len(good) + 2} records" in done.stderr
    # the lines after the refused one reached the topic
    values = {m.value for m in read_topic(settings, settings.topic_name("sampling-results"))}
    assert values == {*good, b"not json"}


def test_records_whose_delivery_fails_are_reported_by_number(
    settings: StreamSettings, stream_data: StreamData
) -> None:
    with EmbeddedBroker() as broker:
        own = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
        pusher = RecordPusher(own, request_timeout_ms=1000, delivery_timeout_ms=3000, retries=0)
        try:
            assert not pusher.push_lines(stream_data.sampling[:3], wait=True).failed
            broker.stop()  # the broker goes away in the middle of a file
            report = pusher.push_lines([b"", *stream_data.sampling[3:6]])
            pusher.flush(None)
        finally:
            pusher._producer.close(timeout=5)
    assert sorted(n for n, _ in report.failed) == [2, 3, 4]
    assert all(reason.startswith("not sent: ") for _, reason in report.failed)


def test_push_to_a_broker_nobody_runs_says_so_without_a_traceback(
    settings: StreamSettings, stream_data: StreamData, tmp_path: Path
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(stream_data.sampling[0] + b"\n")
    nowhere = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})

    done = _push(nowhere, path)

    assert done.returncode == 1
    assert "cannot reach the broker at 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr
