"""Tables created on first use survive two processes creating them at the same time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ingest_cases import backends, scratch_schema
from sqlalchemy.exc import DBAPIError

from stream.tables import create_missing_tables


@pytest.fixture(params=backends())
def url_and_args(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh database: a SQLite file, or a scratch schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}", {}
        return
    with scratch_schema("tables") as found:
        yield found


def _racing(url: str, args: dict[str, Any]) -> tuple[sa.MetaData, sa.Engine, sa.Engine]:
    """A table whose creation another connection wins: it is created, committed, by ``other`` just
    before this process's own CREATE TABLE runs (what two workers starting together can do)."""
    meta = sa.MetaData()
    table = sa.Table("progress", meta, sa.Column("key", sa.String(20), primary_key=True))
    other = sa.create_engine(url, **args)

    raced: list[bool] = []

    def the_other_process_first(target: Any, connection: Any, **kw: Any) -> None:
        if not raced:  # the first attempt only
            raced.append(True)
            twin = sa.Table("progress", sa.MetaData(), sa.Column("key", sa.String(20), primary_key=True))
            twin.create(other)

    sa.event.listen(table, "before_create", the_other_process_first)
    return meta, sa.create_engine(url, **args), other


def test_the_process_that_loses_the_race_carries_on(url_and_args: tuple[str, dict[str, Any]]) -> None:
    url, args = url_and_args
    meta, engine, other = _racing(url, args)
    create_missing_tables(meta, engine)
    with engine.begin() as conn:
        conn.execute(meta.tables["progress"].insert().values(key="a"))
        assert conn.execute(sa.text("SELECT key FROM progress")).scalars().all() == ["a"]
    engine.dispose()
    other.dispose()


def test_the_race_stops_a_plain_create_all(url_and_args: tuple[str, dict[str, Any]]) -> None:
    url, args = url_and_args
    meta, engine, other = _racing(url, args)
    with pytest.raises(DBAPIError, match="already exists"):
        meta.create_all(engine)
    engine.dispose()
    other.dispose()


def test_a_database_that_cannot_be_opened_is_still_an_error(tmp_path: Path) -> None:
    meta = sa.MetaData()
    sa.Table("progress", meta, sa.Column("key", sa.String(20), primary_key=True))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-directory' / 'x.db'}")
    with pytest.raises(DBAPIError, match="unable to open database"):
        create_missing_tables(meta, engine)
