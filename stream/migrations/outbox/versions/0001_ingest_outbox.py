"""ingest_outbox: accepted records, waiting for (or done with) their relay to Kafka

Revision ID: 0001
Revises: (none)

The table as releases before migrations created it; a database holding it without a version is
stamped here (``stream.migrations``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_outbox",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("kind", "record_id", name="uq_ingest_outbox_kind_record"),
    )
    with op.batch_alter_table("ingest_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_outbox_unrelayed", ["relayed_at", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_outbox_unrelayed")
    op.drop_table("ingest_outbox")
