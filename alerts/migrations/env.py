"""Alembic environment of the alert service: uses the connection handed in, or ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context
from alembic.environment import NameFilterParentNames, NameFilterType
from sqlalchemy import Connection, pool

from alerts.db import make_engine
from alerts.models import Base

config = context.config
target_metadata = Base.metadata


def own_table(name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames) -> bool:
    """The database may hold other stores' tables (the ingest outbox shares ``QW_DATABASE_URL``, the
    worker checkpoints may too, each with a version table of its own): autogenerate compares the
    service's tables only, never drafting a drop of theirs (a table the service stops using is
    dropped by a revision written by hand)."""
    return type_ != "table" or name in target_metadata.tables


def migrate_on(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, include_name=own_table, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        migrate_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url: no database given to the migrations")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        migrate_on(conn)


run()
