"""Event-time weeks: the unit every count-based detector works in.

A week starts on Monday 00:00 in the catalogue's time zone. Everything here is pure and
timezone-aware; nothing reads the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

__all__ = ["WEEK", "week_end", "week_start"]

WEEK = timedelta(days=7)


def week_start(when: datetime, zone: tzinfo) -> datetime:
    """Monday 00:00 (in ``zone``) of the week that contains ``when``; ``when`` must be aware."""
    if when.tzinfo is None:
        raise ValueError("week_start needs a timezone-aware datetime")
    local = when.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=zone)


def week_end(when: datetime, zone: tzinfo) -> datetime:
    """Monday 00:00 of the following week (exclusive end)."""
    start = week_start(when, zone)
    nxt = start.date() + WEEK
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
