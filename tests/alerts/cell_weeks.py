"""Cell-weeks as a worker publishes them, for the statistics tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from detectors.base import CellWeek


def cell_week(monday: datetime, region: str, industry: str, week: int, tested: int, failed: int) -> CellWeek:
    """County ``region`` × ``industry`` in the ``week``-th week after ``monday``: ``failed`` of
    ``tested`` batches failed, each on formaldehyde."""
    start = monday + timedelta(weeks=week)
    failed_ids = tuple(f"{region}-{industry}-{week}-{i}" for i in range(failed))
    return CellWeek(
        region=region,
        industry=industry,
        week_start=start,
        week_end=start + timedelta(weeks=1),
        tested=tested,
        failed=failed,
        failed_ids=failed_ids,
        item_failures=(("formaldehyde", failed_ids),) if failed else (),
        last_event=start + timedelta(days=3),
    )
