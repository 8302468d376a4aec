"""Fixtures of the alert-service tests: a migrated database (SQLite, and PostgreSQL when
``QW_TEST_DATABASE_URL`` is set), a fake clock, settings, a runtime, an HTTP client and tokens.

SQLite tests each get a copy of a freshly migrated file; PostgreSQL tests each run inside one
transaction that is rolled back at the end (sessions join it through savepoints).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.api import create_app
from alerts.auth.service import create_token
from alerts.clock import FakeClock
from alerts.db import make_engine, make_session_factory, migrate
from alerts.runtime import Runtime
from alerts.settings import AlertSettings
from schemas import (
    Evidence,
    Level,
    RiskWarning,
    Scope,
    WarningKind,
    WarningStatus,
    fingerprint_of,
    warning_id,
)

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("QW_TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alerts-db") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """A schema of its own in the test database (other suites may share the database)."""
    url = os.environ["QW_TEST_DATABASE_URL"]
    schema = f"alerts_test_{os.getpid()}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sessions(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        db = tmp_path / "alerts.db"
        shutil.copy(template, db)
        engine = make_engine(f"sqlite:///{db}")
        yield make_session_factory(engine)
        engine.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    conn = pg.connect()
    outer = conn.begin()
    yield make_session_factory(conn, join_transaction_mode="create_savepoint")
    outer.rollback()
    conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def settings() -> AlertSettings:
    return AlertSettings(
        environment="test",
        webhook_secret="test-webhook-secret",
        smtp_password="test-smtp-password",
        notify_max_attempts=3,
        notify_backoff_s=10,
        external_url="http://alerts.test",
    )


@dataclass
class Sink:
    """A webhook receiver behind httpx ``MockTransport``: records requests, answers from a script."""

    requests: list[httpx.Request]
    answers: list[int]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.answers.pop(0) if self.answers else 200
        if status == 0:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(status, json={"status": status})


@pytest.fixture
def sink() -> Sink:
    return Sink(requests=[], answers=[])


@pytest.fixture
def runtime(
    sessions: sessionmaker[Session], settings: AlertSettings, clock: FakeClock, sink: Sink
) -> Runtime:
    from alerts.runtime import default_notifiers

    return Runtime(
        settings=settings,
        session_factory=sessions,
        clock=clock,
        notifiers=default_notifiers(settings, transport=httpx.MockTransport(sink.handler)),
    )


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.session() as s:
        yield s


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def token(runtime: Runtime) -> Callable[..., dict[str, str]]:
    """``token(role, county=None)`` -> Authorization header of a fresh token."""

    def make(role: str, county: str | None = None, name: str | None = None) -> dict[str, str]:
        with runtime.session() as s:
            _, clear = create_token(
                s,
                name=name or f"{role}-{county or 'all'}",
                role=role,
                county=county,
                now=runtime.clock.now(),
                catalogue=runtime.catalogue,
            )
            s.commit()
        return {"Authorization": f"Bearer {clear}"}

    return make


def warning(
    *,
    kind: str = "regional",
    level: str = "yellow",
    status: str = "firing",
    region: str | None = "653022",
    industry: str | None = None,
    item: str | None = None,
    enterprise_id: str | None = None,
    detector: str = "rate_cusum",
    raised_at: datetime = T0,
    week: int = 0,
    **extra: Any,
) -> RiskWarning:
    """A warning as a detector would emit it (deterministic id and fingerprint)."""
    scope = Scope(region=region, industry=industry, item=item, enterprise_id=enterprise_id)
    fp = fingerprint_of(detector, kind, scope)
    window_end = T0 + timedelta(weeks=week)
    raised = raised_at + timedelta(weeks=week)
    return RiskWarning(
        id=warning_id(fp, status, window_end, raised),
        fingerprint=fp,
        kind=WarningKind(kind),
        level=Level(level),
        status=WarningStatus(status),
        scope=scope,
        detector=detector,
        raised_at=raised,
        window_start=window_end - timedelta(weeks=1),
        window_end=window_end,
        evidence=Evidence(
            tested=40,
            failed=9,
            observed_rate=0.225,
            expected_rate=0.05,
            statistic=5.1,
            threshold=4.0,
            record_ids=["r1", "r2"],
            **extra,
        ),
        summary=f"{kind} {region or industry or item}: 9 of 40 failed (expected 5 %) [{level}]",
    )


@pytest.fixture
def make_warning() -> Callable[..., RiskWarning]:
    return warning


@pytest.fixture
def ingest(runtime: Runtime) -> Callable[..., Any]:
    """``ingest(*warnings)``: run each through the pipeline in one committed transaction; outcomes."""
    from alerts.pipeline import process_warning

    def run(*ws: RiskWarning) -> list[Any]:
        with runtime.session() as s:
            out = [
                process_warning(s, warning=w, now=runtime.clock.now(), settings=runtime.settings) for w in ws
            ]
            s.commit()
        return out

    return run


def setup_routing(runtime: Runtime) -> None:
    """Two webhook receivers and an e-mail one; Akto county routes to its own team, the rest to duty."""
    from alerts.route.service import create_route, put_receiver

    now = runtime.clock.now()
    with runtime.session() as s:
        put_receiver(
            s, name="duty-hook", kind="webhook", target="http://hooks.test/duty", actor="admin", now=now
        )
        put_receiver(
            s, name="akto-hook", kind="webhook", target="http://hooks.test/akto", actor="admin", now=now
        )
        put_receiver(
            s, name="chief-hook", kind="webhook", target="http://hooks.test/chief", actor="admin", now=now
        )
        create_route(
            s,
            name="akto-food-red",
            team="akto-food",
            receivers=["akto-hook", "chief-hook"],
            actor="admin",
            now=now,
            catalogue=runtime.catalogue,
            position=10,
            region="653022",
            industry="food_processing",
            min_level="orange",
        )
        create_route(
            s,
            name="akto",
            team="akto",
            receivers=["akto-hook"],
            escalation_receivers=["chief-hook"],
            actor="admin",
            now=now,
            catalogue=runtime.catalogue,
            position=20,
            region="653022",
        )
        create_route(
            s,
            name="default",
            team="duty",
            receivers=["duty-hook"],
            escalation_receivers=["chief-hook"],
            actor="admin",
            now=now,
            catalogue=runtime.catalogue,
            position=1000,
        )
        s.commit()


@pytest.fixture
def routed(runtime: Runtime) -> Runtime:
    setup_routing(runtime)
    return runtime
