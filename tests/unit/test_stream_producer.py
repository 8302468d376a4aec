"""``qualitywatch push``'s look at each line before sending it (no broker needed)."""

from __future__ import annotations

import sys

import pytest

from stream.producer import classify_line


def test_a_good_line_is_keyed_by_its_county() -> None:
    assert classify_line(b'{"region": "653022", "sampled_at": "2026-03-01T10:00:00+08:00"}') == (
        "sampling",
        "653022",
        None,
    )
    assert classify_line(b'{"region": "653022", "patrolled_at": "x"}')[:2] == ("patrol", "653022")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe{}", "invalid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"passed": true}', "region: is required"),
        # the worker dead-letters these too; push must report them and go on, not stop with a traceback
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: nested too deeply"),
        (
            b'{"region": ' + b"9" * (sys.get_int_max_str_digits() + 1) + b"}",
            "invalid JSON: a number of more than",
        ),
    ],
)
def test_a_bad_line_is_reported_not_raised(line: bytes, problem: str) -> None:
    _kind, region, found = classify_line(line)
    assert region is None
    assert found is not None and found.startswith(problem), found
