"""The ingest tables: the outbox of accepted records, which is also the idempotency ledger.

An accepted record is committed here first (its canonical JSON and the hash that detects a changed
resubmission), and only then relayed to Kafka by :mod:`stream.ingest.relay`, which stamps
``relayed_at``. Rejected rows are never written: a rejected row changes nothing.

The tables live on their own ``MetaData`` so the ingest store can share a database with the alert
service without either package knowing of the other, and they have migrations of their own
(:data:`HISTORY`, recorded apart from the alert service's), run when a store is opened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from stream.migrations import MIGRATIONS, History, Migrated, MigrationError, migrate

__all__ = [
    "HISTORY",
    "Base",
    "OutboxRecord",
    "RecordKind",
    "UtcDateTime",
    "enable_sqlite_wal",
    "migrate_store",
    "open_store",
]


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC and read back aware on every backend (SQLite too)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class RecordKind(StrEnum):
    """What a record is; each kind has its own topic and its own id space."""

    sampling = "sampling"
    patrol = "patrol"


class Base(DeclarativeBase):
    metadata = MetaData()


class OutboxRecord(Base):
    """One accepted record, waiting for (or done with) its relay to Kafka."""

    __tablename__ = "ingest_outbox"
    __table_args__ = (
        UniqueConstraint("kind", "record_id", name="uq_ingest_outbox_kind_record"),
        Index("ix_ingest_outbox_unrelayed", "relayed_at", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="accepted")
    submitted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    relayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


#: the outbox's migrations (``stream/migrations/outbox``): change the model above only together
#: with a revision there
HISTORY = History(
    store="ingest outbox",
    script_location=MIGRATIONS / "outbox",
    version_table="alembic_version_outbox",
    lock=0x51570003,
    metadata=Base.metadata,
    baseline="0001",
    created_before_migrations={
        "ingest_outbox": frozenset(
            {
                "seq",
                "kind",
                "record_id",
                "region",
                "payload",
                "content_hash",
                "outcome",
                "submitted_by",
                "created_at",
                "relayed_at",
                "attempts",
                "last_error",
            }
        )
    },
)


def migrate_store(engine: Engine) -> Migrated:
    """Bring the ingest tables to this release's schema: created on a fresh database, adopted when an
    earlier release created them, upgraded when behind; safe when another replica does it at the
    same time. :class:`stream.migrations.MigrationError` names the store when that cannot be done."""
    try:
        return migrate(engine, HISTORY)
    except MigrationError as exc:
        raise MigrationError(
            f"ingest outbox {engine.url.render_as_string(hide_password=True)} (QW_DATABASE_URL): {exc}"
        ) from exc


def enable_sqlite_wal(engine: Engine) -> None:
    """Write-ahead log and a busy timeout on SQLite, so the relay reads while the API writes."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL waits for another writer too
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def open_store(url: str, *, create: bool = True, **engine_kwargs: Any) -> sessionmaker[Session]:
    """A session factory for the ingest store at ``url`` (migrated, see :func:`migrate_store`, when
    ``create``)."""
    engine = create_engine(url, **engine_kwargs)
    enable_sqlite_wal(engine)
    if create:
        try:
            migrate_store(engine)
        except BaseException:
            engine.dispose()
            raise
    return sessionmaker(engine, expire_on_commit=False)
