"""the level an alert was acknowledged at (a fresh page only above it)

Revision ID: 0005
Revises: 0004

An alert acknowledged before takes its current level as the level acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_level", sa.String(length=8), nullable=True))
    op.execute("UPDATE alerts SET acknowledged_level = level WHERE state = 'acknowledged'")


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_level")
