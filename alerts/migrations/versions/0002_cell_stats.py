"""cell statistics (weekly county x industry figures for the grid, series and pass-rate tables)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cell_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("industry", sa.String(length=64), nullable=False),
        sa.Column("week_start", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("week_end", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tested", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column(
            "item_failures", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cell_stats")),
        sa.UniqueConstraint("region", "industry", "week_start", name="uq_cell_stats_region_industry_week"),
    )
    with op.batch_alter_table("cell_stats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cell_stats_region"), ["region"], unique=False)
        batch_op.create_index(batch_op.f("ix_cell_stats_industry"), ["industry"], unique=False)
        batch_op.create_index(batch_op.f("ix_cell_stats_week_start"), ["week_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cell_stats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cell_stats_week_start"))
        batch_op.drop_index(batch_op.f("ix_cell_stats_industry"))
        batch_op.drop_index(batch_op.f("ix_cell_stats_region"))
    op.drop_table("cell_stats")
