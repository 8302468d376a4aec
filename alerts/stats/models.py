"""Table of the statistics domain: one closed event-time week of one (county, industry) cell."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["CellStat"]


class CellStat(Base):
    """How many batches were tested and failed in a county × industry cell in one week.

    Written from the stream's ``cell-weeks`` summaries (``POST /api/stats/cell-weeks``); a
    resubmitted week replaces the earlier figures, so a redelivery never double-counts.
    """

    __tablename__ = "cell_stats"
    __table_args__ = (
        UniqueConstraint("region", "industry", "week_start", name="uq_cell_stats_region_industry_week"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(16), index=True)
    industry: Mapped[str] = mapped_column(String(64), index=True)
    week_start: Mapped[datetime] = mapped_column(index=True)
    week_end: Mapped[datetime]
    tested: Mapped[int]
    failed: Mapped[int]
    #: hazard item -> number of failed batches that named it
    item_failures: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
