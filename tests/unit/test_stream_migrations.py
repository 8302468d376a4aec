"""The stream's own tables under migrations: the checkpoint store and the ingest outbox.

On SQLite always, and on PostgreSQL too when ``QW_TEST_DATABASE_URL`` names one (each test in a
scratch schema): a fresh database is created and versioned, a database whose tables an earlier
release made with ``create_all`` is adopted with its rows, a new revision is applied (or, when it
fails, nothing is), and processes opening a store at the same time all succeed.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from ingest_cases import backends
from sqlalchemy import func, select

from qualitywatch.cli import main
from stream.checkpoint import HISTORY as CHECKPOINTS
from stream.checkpoint import Checkpoint, CheckpointStore, CheckpointStoreError
from stream.ingest import OutboxRecord, open_store
from stream.ingest.models import HISTORY as OUTBOX
from stream.migrations import History, Migrated, MigrationError, migrate, migration_config

HISTORIES = {"checkpoints": CHECKPOINTS, "outbox": OUTBOX}
AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@contextmanager
def pg_schema() -> Iterator[str]:
    """A scratch schema of the PostgreSQL test database, dropped afterwards: the URL that searches it."""
    url = os.environ["QW_TEST_DATABASE_URL"]
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def fresh_database(backend: str, path: Path) -> Iterator[str]:
    """The URL of a fresh database: a SQLite file at ``path``, or a scratch PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{path}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture(params=backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path / "fresh.db") as url:
        yield url


def tables_before_migrations() -> sa.MetaData:
    """The tables as releases before migrations created them with ``create_all`` (copied from them)."""
    meta = sa.MetaData()
    sa.Table(
        "stream_checkpoints",
        meta,
        sa.Column("group_id", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "ingest_outbox",
        meta,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("kind", "record_id", name="uq_ingest_outbox_kind_record"),
        sa.Index("ix_ingest_outbox_unrelayed", "relayed_at", "seq"),
    )
    return meta


def _old_rows(engine: sa.Engine) -> None:
    """What an earlier release's worker and ingest service left: a checkpoint, an outbox record."""
    meta = tables_before_migrations()
    with engine.begin() as conn:
        conn.execute(
            meta.tables["stream_checkpoints"]
            .insert()
            .values(
                group_id="g",
                topic="qw.sampling-results",
                partition=0,
                next_offset=42,
                state=b"s42",
                updated_at=AT,
            )
        )
        conn.execute(
            meta.tables["ingest_outbox"]
            .insert()
            .values(
                kind="sampling",
                record_id="S-1",
                region="653022",
                payload="{}",
                content_hash="h",
                outcome="accepted",
                created_at=AT,
                attempts=0,
            )
        )


def _schema(engine: sa.Engine) -> list[tuple[str, ...]]:
    """The stream's tables as the database describes them (version tables left out)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'alembic%' ORDER BY name"
            ).all()
            return [tuple(str(v) for v in r) for r in rows]
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        rows = conn.exec_driver_sql(
            "SELECT table_name, column_name, data_type, is_nullable, column_default,"
            " character_maximum_length FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name NOT LIKE 'alembic%%' ORDER BY 1, 2"
        ).all()
        rows += conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename NOT LIKE 'alembic%%' ORDER BY 1"
        ).all()
        rows += conn.exec_driver_sql(
            "SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = current_schema()::regnamespace"
            " AND conrelid::regclass::text NOT LIKE 'alembic%%' ORDER BY 1"
        ).all()
        return [tuple(str(v).replace(f"{schema}.", "") for v in r) for r in rows]


def _revision(engine: sa.Engine, history: History) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": history.version_table}
        ).get_current_revision()


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


# --------------------------------------------------------------------------------------------------
# a fresh database


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_a_fresh_database_gets_the_tables_at_head_in_their_own_version_table(db_url: str, name: str) -> None:
    history = HISTORIES[name]
    engine = sa.create_engine(db_url)
    try:
        done = migrate(engine, history)
        assert done == Migrated(history.store, None, history.head())
        assert str(done) == f"created at {history.head()}"
        assert _revision(engine, history) == history.head()
        # the alert service's version table is not this one: the stores can share a database
        assert "alembic_version" not in sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert (
                compare_metadata(
                    MigrationContext.configure(conn, opts={"version_table": history.version_table}),
                    history.metadata,
                )
                == []
            )
        assert migrate(engine, history) == Migrated(history.store, history.head(), history.head())
    finally:
        engine.dispose()


def test_opening_the_stores_migrates_them(db_url: str) -> None:
    store = CheckpointStore(db_url, "g")
    sessions = open_store(db_url)
    try:
        assert str(store.migrated) == f"created at {CHECKPOINTS.head()}"
        assert _revision(store.engine, CHECKPOINTS) == CHECKPOINTS.head()
        assert _revision(store.engine, OUTBOX) == OUTBOX.head()
        assert store.save([Checkpoint("qw.sampling-results", 0, 1, b"s1")]) == 1
        with sessions() as session:
            assert session.execute(select(func.count()).select_from(OutboxRecord)).scalar_one() == 0
    finally:
        store.close()
        sessions.kw["bind"].dispose()


def test_histories_sharing_a_database_each_compare_only_their_own_tables(db_url: str) -> None:
    # the alert store, the outbox and the checkpoints in one database (deploy/ shares QW_DATABASE_URL
    # and QW_CHECKPOINT_URL): drafting a revision of one history (autogenerate, which `alembic check`
    # runs) finds nothing to do, instead of dropping the other histories' tables and version tables
    from alerts.db import make_engine as alerts_engine
    from alerts.db import migrate as migrate_alerts
    from alerts.db import migration_config as alerts_config

    engine = alerts_engine(db_url)
    try:
        migrate_alerts(engine)
    finally:
        engine.dispose()
    engine = sa.create_engine(db_url)
    try:
        for history in HISTORIES.values():
            migrate(engine, history)
    finally:
        engine.dispose()
    alembic_command.check(alerts_config(url=db_url))
    for history in HISTORIES.values():
        alembic_command.check(migration_config(history, url=db_url))


# --------------------------------------------------------------------------------------------------
# a database of a release before migrations


@pytest.mark.parametrize("backend", backends())
def test_the_first_revisions_build_what_releases_before_migrations_created(
    backend: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        old = sa.create_engine(stack.enter_context(fresh_database(backend, tmp_path / "old.db")))
        new = sa.create_engine(stack.enter_context(fresh_database(backend, tmp_path / "new.db")))
        stack.callback(old.dispose)
        stack.callback(new.dispose)
        tables_before_migrations().create_all(old)
        migrate(new, CHECKPOINTS, CHECKPOINTS.baseline)
        migrate(new, OUTBOX, OUTBOX.baseline)
        described = _schema(old)
        assert _schema(new) == described
        assert {"stream_checkpoints", "ingest_outbox"} <= {name for row in described for name in row}


def test_tables_an_earlier_release_created_are_adopted_with_their_rows(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    tables_before_migrations().create_all(engine)
    _old_rows(engine)
    before = _schema(engine)
    engine.dispose()

    store = CheckpointStore(db_url, "g")
    sessions = open_store(db_url)
    try:
        assert store.migrated == Migrated(CHECKPOINTS.store, "0001", CHECKPOINTS.head(), adopted=True)
        assert str(store.migrated).startswith("adopted its tables created before migrations at 0001")
        assert store.load("qw.sampling-results", 0) == Checkpoint("qw.sampling-results", 0, 42, b"s42")
        with sessions() as session:
            [record] = session.scalars(select(OutboxRecord)).all()
        assert (record.record_id, record.payload, record.created_at) == ("S-1", "{}", AT)
        assert _revision(store.engine, CHECKPOINTS) == CHECKPOINTS.head()
        assert _revision(store.engine, OUTBOX) == OUTBOX.head()
        assert _schema(store.engine) == before  # the adoption touched no table
    finally:
        store.close()
        sessions.kw["bind"].dispose()
    again = CheckpointStore(db_url, "g")
    assert not again.migrated.adopted and str(again.migrated) == f"at {CHECKPOINTS.head()}, nothing to do"
    again.close()


def test_a_table_of_the_same_name_that_no_release_created_is_left_alone(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE stream_checkpoints (id INTEGER PRIMARY KEY, note TEXT)"))
    try:
        with pytest.raises(CheckpointStoreError, match=r"lacks the columns group_id, next_offset, partition"):
            CheckpointStore(db_url, "g")
        assert _columns(engine, "stream_checkpoints") == {"id", "note"}
        assert CHECKPOINTS.version_table not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# upgrades


def _with_revision_0002(history: History, where: Path, table: str, *, fail: bool = False) -> History:
    """``history`` with a second revision that adds a column to ``table`` (and then fails, if asked)."""
    scripts = where / history.script_location.name
    shutil.copytree(history.script_location, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0002_note.py").write_text(
        f'''"""a note on every row

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("{table}") as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
    if {fail!r}:
        raise RuntimeError("revision 0002 fails half-way")


def downgrade() -> None:
    with op.batch_alter_table("{table}") as batch_op:
        batch_op.drop_column("note")
'''
    )
    return replace(history, script_location=scripts)


def test_an_upgrade_runs_the_new_revision_and_keeps_the_rows(db_url: str, tmp_path: Path) -> None:
    store = CheckpointStore(db_url, "g")
    store.save([Checkpoint("qw.sampling-results", 0, 7, b"s7")])
    store.close()
    newer = _with_revision_0002(CHECKPOINTS, tmp_path, "stream_checkpoints")
    engine = sa.create_engine(db_url)
    try:
        done = migrate(engine, newer)
        assert str(done) == "upgraded 0001 -> 0002"
        assert _revision(engine, CHECKPOINTS) == "0002" and "note" in _columns(engine, "stream_checkpoints")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT next_offset, note FROM stream_checkpoints")).all() == [
                (7, None)
            ]
        assert str(migrate(engine, newer)) == "at 0002, nothing to do"
    finally:
        engine.dispose()


def test_a_database_of_a_release_before_migrations_is_upgraded_after_its_adoption(
    db_url: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(db_url)
    tables_before_migrations().create_all(engine)
    _old_rows(engine)
    try:
        done = migrate(engine, _with_revision_0002(OUTBOX, tmp_path, "ingest_outbox"))
        assert str(done) == "adopted its tables created before migrations at 0001, upgraded to 0002"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT record_id, note FROM ingest_outbox")).all() == [("S-1", None)]
    finally:
        engine.dispose()


def test_a_revision_that_fails_changes_nothing(db_url: str, tmp_path: Path) -> None:
    store = CheckpointStore(db_url, "g")
    store.save([Checkpoint("qw.sampling-results", 0, 7, b"s7")])
    store.close()
    engine = sa.create_engine(db_url)
    try:
        with pytest.raises(RuntimeError, match="revision 0002 fails half-way"):
            migrate(engine, _with_revision_0002(CHECKPOINTS, tmp_path, "stream_checkpoints", fail=True))
        assert _revision(engine, CHECKPOINTS) == "0001"
        assert "note" not in _columns(engine, "stream_checkpoints")  # the column added before it failed
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT next_offset FROM stream_checkpoints")).scalars().all() == [7]
    finally:
        engine.dispose()


def test_a_database_a_later_release_migrated_is_refused(db_url: str, tmp_path: Path) -> None:
    newer = _with_revision_0002(CHECKPOINTS, tmp_path, "stream_checkpoints")
    engine = sa.create_engine(db_url)
    migrate(engine, newer)
    engine.dispose()
    with pytest.raises(
        CheckpointStoreError,
        match=r"at revision 0002 of alembic_version_checkpoints, which this release does not know",
    ):
        CheckpointStore(db_url, "g")
    engine = sa.create_engine(db_url)
    try:
        with pytest.raises(MigrationError, match="does not know"):
            migrate(engine, CHECKPOINTS)
        assert _revision(engine, CHECKPOINTS) == "0002"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# processes starting together


def _open_both(url: str, go: Any, failures: Any) -> None:
    """One process's start: wait for the others, then open the checkpoint store and the outbox."""
    go.wait()
    try:
        CheckpointStore(url, "g").close()
        open_store(url).kw["bind"].dispose()
    except BaseException as exc:
        failures.put(f"{type(exc).__name__}: {exc}")
        raise


@pytest.mark.slow
@pytest.mark.parametrize("backend", backends())
def test_processes_opening_a_fresh_database_together_all_start(backend: str, tmp_path: Path) -> None:
    # two workers and two ingest replicas starting at once (without the migration lock, one of them
    # fails creating a table or a version row another has just created)
    processes = 4
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(2):
        with fresh_database(backend, tmp_path / f"together-{attempt}.db") as url:
            go = ctx.Barrier(processes)
            failures = ctx.Queue()
            started = [ctx.Process(target=_open_both, args=(url, go, failures)) for _ in range(processes)]
            for p in started:
                p.start()
            for p in started:
                p.join(120)
            problems = []
            while not failures.empty():
                problems.append(failures.get())
            assert [p.exitcode for p in started] == [0] * processes, problems
            engine = sa.create_engine(url)
            try:
                for history in HISTORIES.values():
                    with engine.connect() as conn:
                        rows = conn.execute(sa.text(f"SELECT version_num FROM {history.version_table}")).all()
                    assert rows == [(history.head(),)]
            finally:
                engine.dispose()


@pytest.mark.skipif(
    not os.environ.get("QW_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="advisory locks are PostgreSQL's",
)
@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_on_postgresql_a_migration_waits_for_one_already_running(name: str) -> None:
    history = HISTORIES[name]
    with pg_schema() as url:
        engine = sa.create_engine(url)
        holder = engine.connect()
        holder.begin()
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": history.lock})
        failed: list[BaseException] = []
        done: list[Migrated] = []

        def run() -> None:
            try:
                done.append(migrate(engine, history))
            except BaseException as exc:  # reported by the test, not lost in the thread
                failed.append(exc)

        second = threading.Thread(target=run)
        second.start()
        try:
            waiting = (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = 0 AND objid = :key"
            )
            deadline = time.monotonic() + 60
            with engine.connect() as conn:
                while not conn.execute(sa.text(waiting), {"key": history.lock}).scalar():
                    assert second.is_alive() and time.monotonic() < deadline, "the migration did not wait"
                    time.sleep(0.05)
            assert history.version_table not in sa.inspect(engine).get_table_names()  # nothing done meanwhile
            # the holder is the process that got there first: it migrates, then commits
            alembic_command.upgrade(migration_config(history, holder), "head")
            holder.commit()
        finally:
            holder.close()
            second.join(120)
        assert not second.is_alive() and not failed
        assert done == [Migrated(history.store, history.head(), history.head())]  # found it done
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# qualitywatch migrate


def test_the_migrate_command_brings_every_store_to_head_and_says_what_it_did(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    checkpoints = f"sqlite:///{tmp_path / 'checkpoints.db'}"
    engine = sa.create_engine(shared)
    tables_before_migrations().tables["ingest_outbox"].create(engine)  # an earlier release's outbox
    engine.dispose()
    env = {"QW_DATABASE_URL": shared, "QW_CHECKPOINT_URL": checkpoints}
    first = CliRunner().invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].startswith(f"alert store {shared}: created at ")
    assert lines[1:] == [
        f"ingest outbox {shared}: adopted its tables created before migrations at 0001",
        f"checkpoint store {checkpoints}: created at 0001",
    ]
    again = CliRunner().invoke(main, ["migrate"], env=env)
    assert again.exit_code == 0 and all(line.endswith("nothing to do") for line in again.output.splitlines())
    engine = sa.create_engine(shared)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert {"alembic_version", "alembic_version_outbox", "ingest_outbox"} <= tables
        assert "stream_checkpoints" not in tables  # that store is elsewhere
    finally:
        engine.dispose()


def test_the_migrate_command_refuses_a_store_a_later_release_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"
    engine = sa.create_engine(url)
    migrate(engine, _with_revision_0002(OUTBOX, tmp_path, "ingest_outbox"))
    engine.dispose()
    env = {"QW_DATABASE_URL": url, "QW_CHECKPOINT_URL": f"sqlite:///{tmp_path / 'checkpoints.db'}"}
    result = CliRunner().invoke(main, ["migrate"], env=env)
    assert result.exit_code == 1
    assert (
        f"ingest outbox {url} (QW_DATABASE_URL): the database is at revision 0002 of alembic_version_outbox,"
        " which this release does not know" in result.output
    )
    assert "checkpoint store" not in result.output  # it stops at the first store it cannot migrate


@pytest.mark.parametrize("unreachable", ["alert store", "checkpoint store"])
def test_the_migrate_command_names_a_store_it_cannot_reach(unreachable: str, tmp_path: Path) -> None:
    # nothing listens on port 1: the store's driver is refused at once (the outbox shares the alert
    # store's QW_DATABASE_URL, so the alert store is the first one to find it unreachable)
    nowhere = "postgresql+psycopg://qw:s3cret-pw@127.0.0.1:1/qw"
    shared, checkpoints = f"sqlite:///{tmp_path / 'shared.db'}", f"sqlite:///{tmp_path / 'c.db'}"
    env = {
        "QW_DATABASE_URL": nowhere if unreachable == "alert store" else shared,
        "QW_CHECKPOINT_URL": nowhere if unreachable == "checkpoint store" else checkpoints,
    }
    result = CliRunner().invoke(main, ["migrate"], env=env)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # one line, not a traceback
    [line] = [x for x in result.output.splitlines() if x.startswith("Error: ")]
    assert line.startswith(f"Error: {unreachable} postgresql+psycopg://qw:***@127.0.0.1:1/qw"), line
    assert "Connection refused" in line
    assert "s3cret-pw" not in result.output
