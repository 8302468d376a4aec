"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27 15:59:59.794077
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("before", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=True),
        sa.Column("after", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("commander", sa.String(length=64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_region"), ["region"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_state"), ["state"], unique=False)

    op.create_table(
        "receivers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_receivers")),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("industry", sa.String(length=64), nullable=True),
        sa.Column("min_level", sa.String(length=8), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column(
            "receivers", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.Column(
            "escalation_receivers",
            sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("name", name=op.f("uq_routes_name")),
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("industry", sa.String(length=64), nullable=True),
        sa.Column("item", sa.String(length=128), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=True),
        sa.Column("starts_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("county", sa.String(length=16), nullable=True),
        sa.Column("created_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_tokens_digest")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detector", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("industry", sa.String(length=64), nullable=True),
        sa.Column("item", sa.String(length=128), nullable=True),
        sa.Column("enterprise_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("max_level", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column(
            "evidence", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.Column("last_warning_id", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("window_start", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("window_end", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("inhibited_by_id", sa.Integer(), nullable=True),
        sa.Column("silenced_by_id", sa.Integer(), nullable=True),
        sa.Column("route_id", sa.Integer(), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column(
            "receivers", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("escalate_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("disposition", sa.String(length=16), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("created_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inhibited_by_id"],
            ["alerts.id"],
            name=op.f("fk_alerts_inhibited_by_id_alerts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_alerts_route_id_routes"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["silenced_by_id"],
            ["silences.id"],
            name=op.f("fk_alerts_silenced_by_id_silences"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_alerts_fingerprint")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_escalate_at", ["escalate_at"], unique=False)
        batch_op.create_index("ix_alerts_region_industry", ["region", "industry"], unique=False)
        batch_op.create_index("ix_alerts_state_level", ["state", "level"], unique=False)

    op.create_table(
        "incident_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_links_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_links")),
        sa.UniqueConstraint("incident_id", "kind", "value", name="uq_incident_links_kind_value"),
    )
    with op.batch_alter_table("incident_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_links_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "incident_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_members_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_members")),
        sa.UniqueConstraint("incident_id", "name", name="uq_incident_members_incident_name"),
    )
    with op.batch_alter_table("incident_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_members_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "incident_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("due_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("created_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_tasks_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_tasks")),
    )
    with op.batch_alter_table("incident_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_tasks_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_timeline_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_timeline")),
    )
    with op.batch_alter_table("incident_timeline", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_timeline_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "alert_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_comments_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_comments")),
    )
    with op.batch_alter_table("alert_comments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_comments_alert_id"), ["alert_id"], unique=False)

    op.create_table(
        "alert_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("warning_id", sa.String(length=64), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_decisions_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_decisions")),
    )
    with op.batch_alter_table("alert_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_decisions_alert_id"), ["alert_id"], unique=False)

    op.create_table(
        "incident_alerts",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_incident_alerts_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_alerts_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "alert_id", name=op.f("pk_incident_alerts")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("receiver", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.Column("created_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_notifications_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", name="uq_notifications_key"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index("ix_notifications_status_next", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "received_warnings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("raised_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_received_warnings_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_warnings")),
    )
    with op.batch_alter_table("received_warnings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_received_warnings_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_received_warnings_fingerprint"), ["fingerprint"], unique=False)

    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("at", alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_attempts_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
    )
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_attempts_notification_id"), ["notification_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notification_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_attempts_notification_id"))

    op.drop_table("notification_attempts")
    with op.batch_alter_table("received_warnings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_warnings_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_received_warnings_alert_id"))

    op.drop_table("received_warnings")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_status_next")
        batch_op.drop_index(batch_op.f("ix_notifications_alert_id"))

    op.drop_table("notifications")
    op.drop_table("incident_alerts")
    with op.batch_alter_table("alert_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_decisions_alert_id"))

    op.drop_table("alert_decisions")
    with op.batch_alter_table("alert_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_comments_alert_id"))

    op.drop_table("alert_comments")
    with op.batch_alter_table("incident_timeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_timeline_incident_id"))

    op.drop_table("incident_timeline")
    with op.batch_alter_table("incident_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_tasks_incident_id"))

    op.drop_table("incident_tasks")
    with op.batch_alter_table("incident_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_members_incident_id"))

    op.drop_table("incident_members")
    with op.batch_alter_table("incident_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_links_incident_id"))

    op.drop_table("incident_links")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_state_level")
        batch_op.drop_index("ix_alerts_region_industry")
        batch_op.drop_index("ix_alerts_escalate_at")

    op.drop_table("alerts")
    op.drop_table("tokens")
    op.drop_table("silences")
    op.drop_table("routes")
    op.drop_table("receivers")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_state"))
        batch_op.drop_index(batch_op.f("ix_incidents_region"))

    op.drop_table("incidents")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
