"""Poison messages on every input topic go to the dead letter; the records around them still count."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from conftest import EPOCH, StreamData

from stream.producer import RecordPusher
from stream.readback import read_topic
from stream.settings import StreamSettings
from stream.testing import assert_parity, collect, reference_run, wait_done
from stream.topics import Topics

pytestmark = pytest.mark.integration

COUNTY = "653022"


def _bad_messages(sampling_example: bytes) -> list[tuple[bytes, str]]:
    """(value, the reason's start) for each kind of poison."""
    doc = json.loads(sampling_example)
    doc.pop("enterprise_id")
    return [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'{"id": "half a record', "invalid JSON"),
        (b"[1, 2, 3]", "invalid record"),
        (json.dumps(doc).encode(), "invalid record: "),
        # JSON the parser gives up on with other errors than a syntax error: each stopped the worker,
        # and every restart with it, at that message
        (b"[" * 10_000 + b"]" * 10_000, "invalid JSON: nested too deeply"),
        (b'{"id": ' + b"9" * 5000 + b"}", "invalid JSON: a number of more than"),
    ]


def test_bad_bytes_on_every_input_topic_land_in_dead_letter(
    settings: StreamSettings, stream_data: StreamData, start_worker: Any
) -> None:
    topics = Topics.from_settings(settings)
    good = stream_data.sampling[:1500]
    patrols = stream_data.patrols[:20]
    bad = _bad_messages(good[0])
    wrong_key = json.loads(good[1])
    sent: list[tuple[Any, bytes, str]] = []  # (future, value, reason start)
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(good[:700], wait=True).end_offsets
        for value, reason in bad:
            sent.append((pusher.send_raw(topics.sampling, value, key=COUNTY.encode()), value, reason))
            sent.append((pusher.send_raw(topics.patrols, value, key=COUNTY.encode()), value, reason))
        for p in (0, 2):
            sent.append(
                (
                    pusher.send_raw(topics.cell_weeks, b"\x00\x01not a cell", key=b"x", partition=p),
                    b"\x00\x01not a cell",
                    "invalid JSON",
                )
            )
        deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
        cut = pusher.send_raw(topics.cell_weeks, deep, key=b"x", partition=1)
        sent.append((cut, deep, "invalid JSON: nested too deeply"))
        other = "653001" if wrong_key["region"] != "653001" else "653023"
        sent.append((pusher.send_raw(topics.sampling, good[1], key=other.encode()), good[1], "key: must be"))
        r2 = pusher.push_lines(good[700:], wait=True)
        r3 = pusher.push_lines(patrols, wait=True)
        metas = [(fut.get(timeout=30), value, reason) for fut, value, reason in sent]
    for r in (r2, r3):
        for k, v in r.end_offsets.items():
            ends[k] = max(ends.get(k, 0), v)
    for md, _v, _r in metas:
        if md.topic != topics.cell_weeks:
            ends[(md.topic, md.partition)] = max(ends.get((md.topic, md.partition), 0), md.offset + 1)

    start_worker()
    wait_done(settings, ends)

    letters = {}
    for m in read_topic(settings, topics.dead_letter):
        doc = json.loads(m.value or b"")
        letters[(doc["topic"], doc["partition"], doc["offset"])] = doc
    assert len(letters) == len(metas)
    for md, value, reason in metas:
        doc = letters[(md.topic, md.partition, md.offset)]
        assert doc["reason"].startswith(reason), (doc["reason"], reason)
        if reason == "invalid record: ":
            assert "enterprise_id: is required" in doc["reason"]
            assert {"field": "enterprise_id", "reason": "is required", "type": "missing"} in doc["errors"]
        assert base64.b64decode(doc["value_b64"]) == value

    # the good records around the poison were processed exactly as the engine does
    result = collect(settings)
    assert_parity(result, reference_run(good, patrols, EPOCH))


def test_a_message_too_large_to_copy_whole_is_dead_lettered_cut_and_the_worker_goes_on(
    settings: StreamSettings, stream_data: StreamData, start_worker: Any
) -> None:
    # each message is below the broker's 1 MiB limit, but a dead letter carrying it whole (base64,
    # plus a reason quoting it) would be above the producer's, and the worker could never send it
    topics = Topics.from_settings(settings)
    good = stream_data.sampling[:600]
    huge_region = dict(json.loads(good[0]), region="9" * 500_000)
    poison = [
        (b"x" * 900_000, COUNTY.encode(), "invalid JSON"),
        (json.dumps(huge_region).encode(), COUNTY.encode(), "invalid record: region"),
        (good[1], b"6" * 600_000, "key: must be"),
    ]
    with RecordPusher(settings) as pusher:
        ends = pusher.push_lines(good[:300], wait=True).end_offsets
        futures = [(pusher.send_raw(topics.sampling, v, key=k), v, k, r) for v, k, r in poison]
        metas = [(fut.get(timeout=30), v, k, r) for fut, v, k, r in futures]
        for k, v in pusher.push_lines(good[300:], wait=True).end_offsets.items():
            ends[k] = max(ends.get(k, 0), v)
    for md, *_ in metas:
        ends[(md.topic, md.partition)] = max(ends.get((md.topic, md.partition), 0), md.offset + 1)

    start_worker()
    wait_done(settings, ends)

    letters = {}
    for m in read_topic(settings, topics.dead_letter):
        doc = json.loads(m.value or b"")
        letters[(doc["topic"], doc["partition"], doc["offset"])] = doc
    assert len(letters) == len(metas)
    for md, value, key, reason in metas:
        doc = letters[(md.topic, md.partition, md.offset)]
        assert doc["reason"].startswith(reason), doc["reason"][:200]
        assert len(doc["reason"]) < 10_000
        original = base64.b64decode(doc["value_b64"])
        assert value.startswith(original)
        assert doc.get("value_truncated", False) == (len(original) < len(value))
        assert doc.get("value_size", len(value)) == len(value)
        assert key.startswith(base64.b64decode(doc["key_b64"]))
        assert doc.get("key_size", len(key)) == len(key)
    assert any(d.get("value_truncated") for d in letters.values())
    assert any(d.get("key_truncated") for d in letters.values())

    result = collect(settings)
    assert_parity(result, reference_run(good, [], EPOCH))


def test_a_cell_week_no_worker_could_have_closed_is_dead_lettered(
    settings: StreamSettings, stream_data: StreamData, start_worker: Any
) -> None:
    # well-formed JSON, but not a cell of this catalogue and epoch: counted, it would skew the
    # industry series, or wait for ever as the later week that releases every week incomplete
    topics = Topics.from_settings(settings)
    good = stream_data.sampling[:1500]
    cell = {
        "region": COUNTY,
        "industry": "textiles",
        "week_start": "2021-06-07T00:00:00+08:00",  # after the records sent: no real cell of it
        "week_end": "2021-06-14T00:00:00+08:00",
        "tested": 5,
        "failed": 1,
        "failed_ids": ["x"],
        "item_failures": [["formaldehyde", ["x"]]],
        "last_event": "2021-06-08T10:00:00+08:00",
    }
    poison = [
        (dict(cell, region="999999"), "region"),
        (dict(cell, industry="no-such-industry"), "industry"),
        (dict(cell, tested=-5, failed=9), "failed"),
        (
            dict(cell, week_start="2021-06-08T00:00:00+08:00", week_end="2021-06-15T00:00:00+08:00"),
            "is not a week",
        ),
        (
            dict(cell, week_start="2031-01-06T00:00:00+08:00", week_end="2031-01-13T00:00:00+08:00"),
            "after the",
        ),
        (
            dict(cell, week_start="2020-12-28T00:00:00+08:00", week_end="2021-01-04T00:00:00+08:00"),
            "before the epoch",
        ),
    ]
    with RecordPusher(settings) as pusher:
        futures = [
            (pusher.send_raw(topics.cell_weeks, json.dumps(doc).encode(), key=b"textiles", partition=p), why)
            for doc, why in poison
            for p in range(settings.partitions)
        ]
        metas = [(fut.get(timeout=30), why) for fut, why in futures]
        ends = pusher.push_lines(good, wait=True).end_offsets

    start_worker()
    wait_done(settings, ends)

    letters = {}
    for m in read_topic(settings, topics.dead_letter):
        doc = json.loads(m.value or b"")
        letters[(doc["topic"], doc["partition"], doc["offset"])] = doc
    assert len(letters) == len(metas)
    for md, why in metas:
        reason = letters[(md.topic, md.partition, md.offset)]["reason"]
        assert reason.startswith("invalid cell-week: ") and why in reason, reason

    result = collect(settings)
    assert_parity(result, reference_run(good, [], EPOCH))
