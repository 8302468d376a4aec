"""Warning fingerprints and ids equal their written definitions (the hashes the alert service dedups on)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from detectors.base import enterprise_scope
from schemas import Scope, WarningKind, WarningStatus, fingerprint_of, warning_id

KASHGAR = timezone(timedelta(hours=8))


def _sha(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@pytest.mark.parametrize(
    "scope",
    [
        Scope(region="653001"),
        Scope(industry="food_processing", item="lead"),
        Scope(region="653001", industry="building_materials", enterprise_id="91653001C10JP6KC52"),
    ],
)
def test_a_fingerprint_hashes_detector_kind_and_scope(scope: Scope) -> None:
    raw = "|".join(
        [
            "enterprise_repeat",
            "enterprise",
            scope.region or "",
            scope.industry or "",
            scope.item or "",
            scope.enterprise_id or "",
        ]
    )
    for _ in range(2):  # the second answer is the remembered one
        assert fingerprint_of("enterprise_repeat", WarningKind.enterprise, scope) == _sha(raw, 20)
    assert fingerprint_of("enterprise_repeat", "enterprise", scope.model_dump()) == _sha(raw, 20)
    assert fingerprint_of("enterprise_outlier", WarningKind.enterprise, scope) != _sha(raw, 20)


@pytest.mark.parametrize(
    ("window_end", "raised_at"),
    [
        # the same instant (a record's own warning), in the same and in different offsets
        (datetime(2027, 5, 1, 10, 0, tzinfo=KASHGAR), datetime(2027, 5, 1, 10, 0, tzinfo=KASHGAR)),
        (datetime(2027, 5, 1, 10, 0, tzinfo=KASHGAR), datetime(2027, 5, 1, 2, 0, tzinfo=UTC)),
        # different instants (a weekly warning is raised after its window ends)
        (datetime(2027, 5, 3, 0, 0, tzinfo=KASHGAR), datetime(2027, 5, 3, 9, 30, 15, 12, tzinfo=KASHGAR)),
        (
            datetime(2027, 5, 3, 0, 0, tzinfo=KASHGAR),
            datetime(2027, 5, 2, 23, 59, 59, 999999, tzinfo=KASHGAR),
        ),
    ],
)
def test_a_warning_id_hashes_fingerprint_status_and_both_times_in_utc(
    window_end: datetime, raised_at: datetime
) -> None:
    end = window_end.astimezone(UTC).isoformat()
    raised = raised_at.astimezone(UTC).isoformat()
    for status in WarningStatus:
        expected = _sha(f"abc|{status.value}|{end}|{raised}", 24)
        assert warning_id("abc", status, window_end, raised_at) == expected


def test_an_enterprise_scope_is_shared_and_equals_a_new_one() -> None:
    first = enterprise_scope("653001", "building_materials", "91653001C10JP6KC52")
    assert first is enterprise_scope("653001", "building_materials", "91653001C10JP6KC52")
    assert first == Scope(region="653001", industry="building_materials", enterprise_id="91653001C10JP6KC52")
    with pytest.raises(Exception, match="frozen"):
        first.region = "653022"  # type: ignore[misc]  # shared, so it must not change
