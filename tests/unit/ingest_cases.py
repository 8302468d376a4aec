"""Records, clocks and stores for the ingest tests.

Stores are SQLite always, and PostgreSQL too when ``QW_TEST_DATABASE_URL`` names one.
"""

from __future__ import annotations

import os
import struct
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


def compound_file(*streams: str) -> bytes:
    """A minimal OLE2 compound file (the container of Excel 97-2003 ``.xls`` and of a password-protected
    ``.xlsx``) whose directory names ``streams`` (empty): 512-byte header, one FAT and one directory sector.
    """
    end, free, fat_sector = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    header = (
        bytes.fromhex("D0CF11E0A1B11AE1")
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
        + struct.pack("<109I", 0, *[free] * 108)
    )
    fat = struct.pack("<128I", fat_sector, end, *[free] * 126)

    def entry(name: str, kind: int, child: int, right: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBBIII", len(raw), kind, 1, free, right, child)
            + bytes(16 + 4 + 16)
            + struct.pack("<IQ", end, 0)
        )

    entries = [entry("Root Entry", 5, 1 if streams else free, free)]
    for n, name in enumerate(streams, start=1):
        entries.append(entry(name, 2, free, n + 1 if n < len(streams) else free))
    directory = b"".join(entries).ljust(512, b"\0")
    return header + fat + directory
