"""The alert and incident state machines, the settings object and the migrations."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import Engine, inspect, text

from alerts.alert.models import AlertState
from alerts.alert.state import TRANSITIONS as ALERT_MOVES
from alerts.alert.state import next_state
from alerts.db import MIGRATION_LOCK, make_engine, make_session_factory, migrate, migration_config
from alerts.errors import IllegalTransition
from alerts.incident.models import Incident, IncidentState
from alerts.incident.service import incident_detail
from alerts.incident.state import check_transition
from alerts.models import Base
from alerts.settings import AlertSettings

ACTIONS = ("acknowledge", "resolve", "raise_level", "refire")


@pytest.mark.parametrize("state", list(AlertState))
@pytest.mark.parametrize("action", ACTIONS)
def test_alert_state_machine(state: AlertState, action: str) -> None:
    if (state, action) in ALERT_MOVES:
        assert next_state(state.value, action) is ALERT_MOVES[(state, action)]
    else:
        with pytest.raises(IllegalTransition) as info:
            next_state(state.value, action)
        assert info.value.field == "state" and state.value in info.value.message


LEGAL = {
    ("reported", "investigating"),
    ("investigating", "controlled"),
    ("controlled", "resolved"),
    ("controlled", "investigating"),
    ("resolved", "closed"),
}


@pytest.mark.parametrize("frm", list(IncidentState))
@pytest.mark.parametrize("to", list(IncidentState))
def test_incident_state_machine(frm: IncidentState, to: IncidentState) -> None:
    if (frm.value, to.value) in LEGAL:
        assert check_transition(frm.value, to.value) is to
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(frm.value, to.value)
        assert f"from {frm.value} to {to.value}" in info.value.message


def test_default_secrets_are_refused_outside_development() -> None:
    assert AlertSettings(environment="development").webhook_secret.get_secret_value() == "changethis"
    with pytest.raises(ValidationError) as info:
        AlertSettings(environment="production", smtp_password="s3cret")
    assert "QW_WEBHOOK_SECRET" in str(info.value)
    ok = AlertSettings(environment="production", webhook_secret="a", smtp_password="b")
    with pytest.raises(ValidationError):
        ok.port = 1  # type: ignore[misc]
    assert "a" not in repr(ok.webhook_secret)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_ESCALATE_RED_S", "60")
    monkeypatch.setenv("QW_TOPIC_PREFIX", "dev.")
    s = AlertSettings()
    assert s.escalate_red_s == 60 and s.topic == "dev.warnings"


def test_migrations_build_exactly_the_models(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        conn = session.connection()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_datetimes_come_back_timezone_aware(runtime, ingest, make_warning, session) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from alerts.alert.models import Alert

    w = make_warning()
    ingest(w)
    a = session.scalar(select(Alert))
    assert a.first_seen == w.raised_at and a.first_seen.tzinfo is not None


@pytest.fixture
def blank_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the backend, for running the migrations step by step."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'steps.db'}")
        yield engine
        engine.dispose()
        return
    url = os.environ["QW_TEST_DATABASE_URL"]
    schema = f"alerts_steps_{os.getpid()}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def test_timeline_entries_written_before_0003_keep_their_text_and_have_no_data(blank_engine: Engine) -> None:
    migrate(blank_engine, "0002")
    at = datetime(2026, 3, 2, tzinfo=UTC)
    with blank_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO incidents (id, title, state, level, created_by, created_at, updated_at)"
                " VALUES (1, 'old', 'investigating', 'red', 'alice', :at, :at)"
            ),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO incident_timeline (incident_id, at, actor, kind, text)"
                " VALUES (1, :at, 'alice', 'state', 'reported -> investigating')"
            ),
            {"at": at},
        )
    migrate(blank_engine)
    with make_session_factory(blank_engine)() as session:
        inc = session.get(Incident, 1)
        assert inc is not None
        [entry] = incident_detail(session, incident=inc)["timeline"]
    assert entry == {
        "at": at.isoformat(),
        "actor": "alice",
        "kind": "state",
        "data": None,
        "text": "reported -> investigating",
    }
    with blank_engine.begin() as conn:
        alembic_command.downgrade(migration_config(conn), "0002")
    with blank_engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("incident_timeline")}
    assert "data" not in columns and "text" in columns


def test_an_alert_acknowledged_before_0005_takes_its_level_as_the_level_acknowledged(
    blank_engine: Engine,
) -> None:
    migrate(blank_engine, "0004")
    at = datetime(2026, 3, 2, tzinfo=UTC)
    with blank_engine.begin() as conn:
        for id_, state in ((1, "acknowledged"), (2, "firing")):
            conn.execute(
                text(
                    "INSERT INTO alerts (id, fingerprint, kind, detector, state, level, max_level, summary,"
                    " evidence, last_warning_id, count, first_seen, last_seen, window_start, window_end,"
                    " started_at, receivers, tier, created_at, updated_at) VALUES (:id, :fp, 'regional',"
                    " 'd', :state, 'orange', 'red', 's', '{}', 'w', 1, :at, :at, :at, :at, :at, '[]', 0,"
                    " :at, :at)"
                ),
                {"id": id_, "fp": f"fp{id_}", "state": state, "at": at},
            )
    migrate(blank_engine)
    with blank_engine.connect() as conn:
        levels = dict(conn.execute(text("SELECT id, acknowledged_level FROM alerts ORDER BY id")).all())
    assert levels == {1: "orange", 2: None}


@pytest.mark.skipif(
    not os.environ.get("QW_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="advisory locks are PostgreSQL's",
)
def test_a_migration_waits_for_one_already_running(backend: str, blank_engine: Engine) -> None:
    # processes started together (the migration job, the alert service, ingest replicas) must not
    # create the same tables at once: the second waits for the first's transaction, then finds the
    # schema at head and does nothing
    if backend != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    admin = make_engine(os.environ["QW_TEST_DATABASE_URL"])
    holder = blank_engine.connect()
    holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    failed: list[BaseException] = []

    def run() -> None:
        try:
            migrate(blank_engine)
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
        with admin.connect() as conn:
            while not conn.execute(text(waiting), {"key": MIGRATION_LOCK}).scalar():
                assert second.is_alive() and time.monotonic() < deadline, "the migration did not wait"
                time.sleep(0.05)
        assert "alembic_version" not in inspect(blank_engine).get_table_names()  # nothing done meanwhile
    finally:
        holder.rollback()
        holder.close()
        second.join(120)
        admin.dispose()
    assert not second.is_alive() and not failed
    with blank_engine.connect() as conn:
        assert (
            MigrationContext.configure(conn).get_current_revision()
            == ScriptDirectory.from_config(migration_config()).get_current_head()
        )
