"""The stream's own tables under Alembic migrations: the checkpoint store and the ingest outbox.

Each has a migration history of its own (:class:`History`: an Alembic script directory here, a
version table), so the checkpoint store (``QW_CHECKPOINT_URL``), the outbox and the alert store
(``QW_DATABASE_URL``) may be one database or several: the alert service's history records itself in
``alembic_version``, the checkpoint store's in ``alembic_version_checkpoints`` and the outbox's in
``alembic_version_outbox``.

:func:`migrate` brings a database to a revision. ``qualitywatch migrate`` runs it for every store
before a release is rolled out; the worker and the ingest service run it again when they open their
store, which finds the schema current and does nothing (or, on a fresh database, creates it).

Processes started together (two workers, two ingest replicas, the migration job) migrate one after
another: on PostgreSQL each migration first takes its history's advisory lock for its transaction, on
SQLite it holds the database's write lock from its first statement (``BEGIN IMMEDIATE``). Whoever
comes second finds the schema at the revision and does nothing.

A database whose tables an earlier release created without migrations (``create_all``) has them but
no version: it is *adopted*, that is stamped at the history's first revision (which creates exactly
those tables) once their columns are found to be the ones that release made, then upgraded like any
other. Nothing in the tables is touched by the adoption.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command as alembic_command
from alembic import context
from alembic.config import Config
from alembic.environment import NameFilterParentNames, NameFilterType
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect, pool, text

__all__ = [
    "MIGRATIONS",
    "History",
    "Migrated",
    "MigrationError",
    "migrate",
    "migration_config",
    "run_environment",
]

log = logging.getLogger(__name__)

#: the folder of the histories' script directories (``checkpoints/``, ``outbox/``)
MIGRATIONS = Path(__file__).parent


class MigrationError(RuntimeError):
    """A store's tables cannot be brought to this release's schema; nothing was changed.

    The message says why and what to do; it does not name the store (the caller knows where it is).
    """


@dataclass(frozen=True)
class History:
    """One store's migration history."""

    #: what the store is called in messages ("checkpoint store")
    store: str
    #: its Alembic script directory (``env.py``, the revision template, ``versions/``)
    script_location: Path
    #: the table that records the store's revision
    version_table: str
    #: the PostgreSQL advisory lock a migration of this history holds for its transaction
    lock: int
    #: the tables as they are now (what ``alembic revision --autogenerate`` compares against)
    metadata: MetaData
    #: the revision that creates the tables as releases without migrations created them
    baseline: str
    #: those tables, each with its columns: what adoption checks before it stamps ``baseline``
    created_before_migrations: Mapping[str, frozenset[str]]

    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(migration_config(self))

    def head(self) -> str:
        head = self.script().get_current_head()
        assert head is not None, f"{self.script_location}: no revisions"
        return head


@dataclass(frozen=True)
class Migrated:
    """What :func:`migrate` found and did."""

    store: str
    #: the revision before (``None``: no version, tables created or adopted)
    before: str | None
    after: str | None
    #: the tables were there without a version and have been stamped at the baseline
    adopted: bool = False

    def __str__(self) -> str:
        if self.adopted:
            done = f"adopted its tables created before migrations at {self.before}"
            return done if self.after == self.before else f"{done}, upgraded to {self.after}"
        if self.before is None:
            return f"created at {self.after}"
        if self.before == self.after:
            return f"at {self.after}, nothing to do"
        return f"upgraded {self.before} -> {self.after}"


def migration_config(
    history: History, connection: Connection | None = None, url: str | None = None
) -> Config:
    """Alembic configuration of ``history`` (no ini file needed): on ``connection``, or on ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(history.script_location))
    cfg.attributes["history"] = history
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, history: History, revision: str = "head") -> Migrated:
    """Bring ``history``'s tables in ``engine``'s database to ``revision``, in one transaction.

    Raises :class:`MigrationError` (and changes nothing) when the database is at a revision this
    release does not know, or holds a table of the history's name that no release of ours created.
    """
    with _migration_lock(engine, history) as conn:
        return _upgrade(conn, history, revision)


@contextmanager
def _migration_lock(engine: Engine, history: History) -> Iterator[Connection]:
    """A connection in a transaction that no other migration of ``history`` can run beside."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # the driver starts a transaction only before data changes, not before the version table
            # is read or a table created: left to it, two processes could both find no table. Here the
            # transaction is ours and takes the write lock at once; the pool resets the connection.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            return
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": history.lock})
            yield conn


def _upgrade(conn: Connection, history: History, revision: str) -> Migrated:
    script = history.script()
    before = _current(conn, history)
    if before is not None and before not in {r.revision for r in script.walk_revisions()}:
        raise MigrationError(
            f"the database is at revision {before} of {history.version_table}, which "
            "this release does not know (a later release migrated it). Run that release, or restore "
            "the backup taken before its upgrade: docs/operations.md, 'Upgrades with migrations'."
        )
    adopted = before is None and _created_before_migrations(conn, history)
    cfg = migration_config(history, conn)
    if adopted:
        alembic_command.stamp(cfg, history.baseline)
        before = history.baseline
    alembic_command.upgrade(cfg, revision)
    done = Migrated(history.store, before, _current(conn, history), adopted)
    if done.adopted or done.before != done.after:
        log.info("%s: %s", history.store, done)
    return done


def _current(conn: Connection, history: History) -> str | None:
    found = MigrationContext.configure(conn, opts={"version_table": history.version_table})
    return found.get_current_revision()


def _created_before_migrations(conn: Connection, history: History) -> bool:
    """Whether the history's tables are there without a version (made by an earlier release)."""
    found = inspect(conn)
    tables = set(found.get_table_names())
    present = [name for name in history.created_before_migrations if name in tables]
    if not present:
        return False
    for name, columns in history.created_before_migrations.items():
        if name not in tables:
            raise MigrationError(
                f"table {name} is missing beside {', '.join(present)}, which have no "
                f"version in {history.version_table}; nothing was changed"
            )
        missing = columns - {c["name"] for c in found.get_columns(name)}
        if missing:
            raise MigrationError(
                f"table {name} has no version in {history.version_table} and lacks the "
                f"columns {', '.join(sorted(missing))}: it is not one a release of QualityWatch created, "
                "so it is left as it is (rename it, or use another database)"
            )
    return True


def run_environment() -> None:
    """The ``env.py`` of every history: migrate the connection handed in by :func:`migrate`, or the
    database at ``sqlalchemy.url`` (``alembic revision --autogenerate`` from a developer's machine)."""
    config = context.config
    history: History = config.attributes["history"]

    def own_table(name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames) -> bool:
        # the database may hold the other stores' tables and version tables too (one database for
        # all, as in deploy/): autogenerate compares this history's tables only, never drafting a
        # drop of theirs (a table this history stops using is dropped by a revision written by hand)
        return type_ != "table" or name in history.metadata.tables

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=history.metadata,
            version_table=history.version_table,
            include_name=own_table,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url: no database given to the migrations")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            run(conn)
    finally:
        engine.dispose()
