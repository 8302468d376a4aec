"""Event-time weeks and the epoch seconds the engine keys event times by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.weeks import epoch_seconds, week_end, week_start

ZONES = [
    UTC,
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=-5, minutes=-30)),
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("America/New_York"),  # daylight saving time: the offset changes
]


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)),  # noqa: DTZ001
    st.sampled_from(ZONES),
)
def test_epoch_seconds_is_the_timestamp(naive: datetime, zone: timezone | ZoneInfo) -> None:
    when = naive.replace(tzinfo=zone)
    assert epoch_seconds(when) == when.timestamp()


def test_weeks_start_on_monday_midnight_in_the_catalogue_zone() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    sunday_night_utc = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # Monday 01:00 in Shanghai
    assert week_start(sunday_night_utc, zone) == datetime(2026, 3, 2, tzinfo=zone)
    assert week_end(sunday_night_utc, zone) == datetime(2026, 3, 9, tzinfo=zone)
    with pytest.raises(ValueError, match="timezone-aware"):
        week_start(datetime(2026, 3, 1), zone)  # noqa: DTZ001
