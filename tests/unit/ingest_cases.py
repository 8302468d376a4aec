"""Records, clocks and stores for the ingest tests.

Stores are SQLite always, and PostgreSQL too when ``QW_TEST_DATABASE_URL`` names one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from schemas import uscc_check_char
from stream.ingest import open_store

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def uscc(n: int = 1) -> str:
    first = f"91653001MA7B{n:05d}"[:17]
    return first + uscc_check_char(first)


def sampling(n: int = 1, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"S-{n}",
        "sampled_at": "2026-03-02T10:00:00+08:00",
        "region": "653022",
        "industry": "textiles",
        "product": "cotton T-shirt",
        "enterprise_id": uscc(n % 7),
        "passed": True,
        "inspector_id": "insp-1",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not ...}


def patrol(n: int = 1, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"P-{n}",
        "patrolled_at": "2026-03-03T09:30:00+08:00",
        "region": "653001",
        "industry": "food_processing",
        "enterprise_id": uscc(n % 7),
        "inspector_id": "insp-2",
        "hazard": "expired raw materials",
        "severity": "general",
        "action": "rectified_on_site",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not ...}


def backends() -> list[Any]:
    return [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not os.environ.get("QW_TEST_DATABASE_URL", "").startswith("postgresql"),
                reason="QW_TEST_DATABASE_URL does not name a PostgreSQL database",
            ),
        ),
    ]


@contextmanager
def scratch_schema(prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh schema in the PostgreSQL test database, dropped afterwards: its URL and the engine
    arguments that make it the search path."""
    url = os.environ["QW_TEST_DATABASE_URL"]
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield url, {"connect_args": {"options": f"-csearch_path={schema}"}}
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def store(backend: str, tmp_path: Any) -> Iterator[sessionmaker[Session]]:
    """A fresh ingest store: a SQLite file, or a scratch schema in the PostgreSQL test database."""
    if backend == "sqlite":
        factory = open_store(f"sqlite:///{tmp_path / 'ingest.db'}")
        yield factory
        factory.kw["bind"].dispose()
        return
    with scratch_schema("ingest") as (url, args):
        factory = open_store(url, **args)
        try:
            yield factory
        finally:
            factory.kw["bind"].dispose()
