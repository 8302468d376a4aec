"""The checkpoint store: detector stage state together with the source offset it covers.

One row per (consumer group, topic, partition): the pickled partition state and the offset of the
next message it has not seen. Rows of one checkpoint are written in one database transaction, so a
restored state always matches the offset the consumer seeks to. Nothing here depends on the
broker's end offsets or committed offsets. SQLite by default, PostgreSQL in production (SQLAlchemy).
The table has migrations of its own (:data:`HISTORY`), run when a store is opened.

A write never moves a partition backwards: processing is deterministic, so the state at offset *n*
is the same whoever computed it, and keeping the furthest one makes a late write from a worker
that has already lost the partition harmless.

The state is stored with the version of its shape (:data:`STATE_VERSION`, :func:`encode_state`); a
worker refuses a checkpoint of another version with :class:`CheckpointVersionError`, which says what
to do, rather than failing later inside a detector on an attribute the old pickle lacks.

Beside the version, the header records the settings the state was made with (the catalogue and
the seed, which the stages keep inside the state: :meth:`stream.stages.StageContext.made_with`); a
worker refuses a checkpoint made with other ones with :class:`CheckpointSettingsError`, rather than
going on detecting with the old catalogue. A checkpoint written before they were recorded is read.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from .migrations import MIGRATIONS, History, Migrated, MigrationError, migrate

__all__ = [
    "CONNECT_TIMEOUT_S",
    "HISTORY",
    "STATE_VERSION",
    "Checkpoint",
    "CheckpointRefused",
    "CheckpointSettingsError",
    "CheckpointStore",
    "CheckpointStoreError",
    "CheckpointVersionError",
    "decode_state",
    "encode_state",
    "state_made_with",
    "state_version",
]

#: The shape of the stage state a checkpoint holds: every class pickled into one (the partitions of
#: ``stream.stages``, the stages of ``detectors.engine`` and the detectors inside them). Raise it in
#: the change that alters any of them (an attribute added, removed or re-meant), and say so in the
#: changelog; ``tests/unit/test_checkpoint_version.py`` fails when the shape changes without it.
#: 1: checkpoints written before the version was recorded.
STATE_VERSION = 2
_MAGIC = b"QW-STATE"
_HEADER = len(_MAGIC) + 4  # the magic, then the version as 4 bytes big-endian
#: after the header, the settings the state was made with: this byte, their length (1 byte), the
#: ASCII text; a pickle never starts with it (protocols >= 2 start with 0x80)
_MADE_WITH = b"M"

#: the settings a checkpoint records -> the variable that sets each
_SETTING_VARIABLES = {"catalogue": "QW_CATALOGUE_PATH", "seed": "QW_SEED"}
#: what to do about a checkpoint that cannot be restored
_FRESH_START = (
    "start the workers on a fresh checkpoint store (an empty QW_CHECKPOINT_URL database, or delete the "
    "group's stream_checkpoints rows) and let them replay the input topics: docs/operations.md, "
)


#: seconds a connection to a PostgreSQL checkpoint store may take (its driver waits for ever by
#: default, so a worker whose database host drops packets or never answers would hang silently at
#: start); a ``connect_timeout`` in the URL wins
CONNECT_TIMEOUT_S = 10


class CheckpointStoreError(RuntimeError):
    """The checkpoint store cannot be reached, or its table cannot be brought to this release's schema."""


class CheckpointRefused(RuntimeError):
    """A checkpoint this worker must not restore; the message says why and what to do."""


class CheckpointVersionError(CheckpointRefused):
    """A checkpoint holds stage state of another version than this release's."""


class CheckpointSettingsError(CheckpointRefused):
    """A checkpoint holds stage state made with another catalogue or seed than this worker's."""


def encode_state(state: Any, made_with: str = "") -> bytes:
    """The bytes a checkpoint stores for ``state``: a header with :data:`STATE_VERSION` and the settings
    it was ``made_with`` (none when empty), then the pickle."""
    head = _MAGIC + STATE_VERSION.to_bytes(4, "big")
    if made_with:
        text = made_with.encode("ascii")
        head += _MADE_WITH + len(text).to_bytes(1, "big") + text
    return head + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def state_made_with(blob: bytes) -> str | None:
    """The settings the state in ``blob`` was made with (None: written before they were recorded)."""
    if not blob.startswith(_MAGIC) or blob[_HEADER : _HEADER + 1] != _MADE_WITH:
        return None
    return blob[_HEADER + 2 : _HEADER + 2 + blob[_HEADER + 1]].decode("ascii")


def _settings_changed(where: str, before: str, now: str) -> CheckpointSettingsError:
    old, new = (dict(kv.split("=", 1) for kv in text.split()) for text in (before, now))
    changed = [
        f"{_SETTING_VARIABLES.get(key, key)} ({old.get(key, '-')} in the checkpoint, {new.get(key, '-')} now)"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]
    return CheckpointSettingsError(
        f"{where}: the checkpoint was made with another {', '.join(changed)}; its stage state holds "
        "the counties, industries, targets and seed it was made with. To go on with the checkpoints, "
        "start the worker with the settings they were made with; to detect with the new ones, "
        + _FRESH_START
        + "'Changing the catalogue or the seed'."
    )


def state_version(blob: bytes) -> int:
    """The version of the state in ``blob`` (1: written before the version was recorded)."""
    return int.from_bytes(blob[len(_MAGIC) : _HEADER], "big") if blob.startswith(_MAGIC) else 1


def decode_state(blob: bytes, where: str = "checkpoint", made_with: str | None = None) -> Any:
    """The state in ``blob``; :class:`CheckpointVersionError` when it is not of :data:`STATE_VERSION`,
    :class:`CheckpointSettingsError` when it records settings other than ``made_with`` (if given)."""
    version = state_version(blob)
    if version != STATE_VERSION:
        raise CheckpointVersionError(
            f"{where}: the checkpoint holds stage state version {version}, this release reads version "
            f"{STATE_VERSION}; " + _FRESH_START + "'Upgrades with migrations'."
        )
    recorded = state_made_with(blob)
    if made_with is not None and recorded is not None and recorded != made_with:
        raise _settings_changed(where, recorded, made_with)
    start = _HEADER if recorded is None else _HEADER + 2 + len(recorded)
    return pickle.loads(blob[start:])


_meta = MetaData()
checkpoints = Table(
    "stream_checkpoints",
    _meta,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: the checkpoint store's migrations (``stream/migrations/checkpoints``): change the table above
#: only together with a revision there
HISTORY = History(
    store="checkpoint store",
    script_location=MIGRATIONS / "checkpoints",
    version_table="alembic_version_checkpoints",
    lock=0x51570002,
    metadata=_meta,
    baseline="0001",
    created_before_migrations={
        "stream_checkpoints": frozenset(
            {"group_id", "topic", "partition", "next_offset", "state", "updated_at"}
        )
    },
)


@dataclass(frozen=True)
class Checkpoint:
    """One partition's saved state: the pickled state and the next offset to read."""

    topic: str
    partition: int
    next_offset: int
    state: bytes


class CheckpointStore:
    """Loads and saves :class:`Checkpoint` s for one consumer group."""

    def __init__(self, url: str, group_id: str) -> None:
        self.group_id = group_id
        parsed = make_url(url)
        connect_args: dict[str, Any] = {}
        if parsed.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        self.engine: Engine = create_engine(url, future=True, connect_args=connect_args)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        where = f"checkpoint store {parsed.render_as_string(hide_password=True)} (QW_CHECKPOINT_URL)"
        try:
            #: what opening the store found and did to its table (workers starting together on a
            #: fresh store: one creates it, the others find it current)
            self.migrated: Migrated = migrate(self.engine, HISTORY)
        except DBAPIError as exc:
            self.engine.dispose()
            reason = str(exc.orig).strip()
            raise CheckpointStoreError(f"{where}: cannot be reached or prepared: {reason}") from exc
        except MigrationError as exc:
            self.engine.dispose()
            raise CheckpointStoreError(f"{where}: {exc}") from exc

    def load(self, topic: str, partition: int) -> Checkpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(checkpoints.c.next_offset, checkpoints.c.state).where(
                    checkpoints.c.group_id == self.group_id,
                    checkpoints.c.topic == topic,
                    checkpoints.c.partition == partition,
                )
            ).first()
        if row is None:
            return None
        return Checkpoint(topic, partition, int(row.next_offset), bytes(row.state))

    def load_all(self) -> list[Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    checkpoints.c.topic,
                    checkpoints.c.partition,
                    checkpoints.c.next_offset,
                    checkpoints.c.state,
                )
                .where(checkpoints.c.group_id == self.group_id)
                .order_by(checkpoints.c.topic, checkpoints.c.partition)
            ).all()
        return [Checkpoint(r.topic, int(r.partition), int(r.next_offset), bytes(r.state)) for r in rows]

    def save(self, items: Iterable[Checkpoint]) -> int:
        """Write ``items`` in one transaction; rows further ahead than an item are kept. Rows written."""
        now = datetime.now(UTC)
        written = 0
        with self.engine.begin() as conn:
            for cp in items:
                res = conn.execute(
                    update(checkpoints)
                    .where(
                        checkpoints.c.group_id == self.group_id,
                        checkpoints.c.topic == cp.topic,
                        checkpoints.c.partition == cp.partition,
                        checkpoints.c.next_offset <= cp.next_offset,
                    )
                    .values(next_offset=cp.next_offset, state=cp.state, updated_at=now)
                )
                if res.rowcount:
                    written += 1
                    continue
                exists = conn.execute(
                    select(checkpoints.c.next_offset).where(
                        checkpoints.c.group_id == self.group_id,
                        checkpoints.c.topic == cp.topic,
                        checkpoints.c.partition == cp.partition,
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        checkpoints.insert().values(
                            group_id=self.group_id,
                            topic=cp.topic,
                            partition=cp.partition,
                            next_offset=cp.next_offset,
                            state=cp.state,
                            updated_at=now,
                        )
                    )
                    written += 1
        return written

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL waits for another writer too
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()
