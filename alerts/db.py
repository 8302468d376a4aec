"""The store: declarative base, column types, engine and session factory, Alembic migrations.

SQLite is the embedded default, PostgreSQL the production store; the same models and migrations
serve both. Datetimes are stored in UTC and always come back timezone-aware.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from alembic import command as alembic_command
from alembic.config import Config
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Json",
    "UTCDateTime",
    "make_engine",
    "make_session_factory",
    "migrate",
    "migration_config",
    "on_commit",
]

MIGRATIONS = Path(__file__).with_name("migrations")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC (SQLite keeps no offset, so it is re-attached)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datetime must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON column (JSONB is not needed: nothing queries inside it)
Json = JSON().with_variant(JSON(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: Json,
        list[str]: Json,
    }


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and a busy timeout.

    On PostgreSQL, ORM inserts that need generated ids go one row at a time: psycopg parses a statement's
    placeholders in Python and caches only short statements, so a many-row ``INSERT … RETURNING`` costs
    about twice the CPU of the same rows sent as one short, cached statement each.
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    elif url.startswith("postgresql"):
        kwargs.setdefault("use_insertmanyvalues", False)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    return engine


def make_session_factory(bind: Engine | Connection, **kwargs: Any) -> sessionmaker[Session]:
    kwargs.setdefault("expire_on_commit", False)
    return sessionmaker(bind=bind, **kwargs)


def migration_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic configuration pointing at ``alerts/migrations`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


#: PostgreSQL advisory lock (a number of our own) held by a migration for its transaction
MIGRATION_LOCK = 0x51570001


def migrate(bind: Engine | Connection, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the service does this at start).

    Given an engine, the migration runs in one transaction that first takes :data:`MIGRATION_LOCK` on
    PostgreSQL: processes started together (the migration job, the alert service, the ingest replicas:
    ``kubectl apply`` starts them at once) migrate one after another, and those that come after the
    first find the schema at ``revision`` and do nothing. A connection handed in is the caller's.
    """
    if isinstance(bind, Connection):
        alembic_command.upgrade(migration_config(bind), revision)
        return
    with bind.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        alembic_command.upgrade(migration_config(conn), revision)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction has committed (never on rollback)."""
    session.info.setdefault("after_commit", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for cb in callbacks:
        cb()


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop("after_commit", None)
