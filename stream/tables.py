"""Creating the stream's own tables when several processes start on a fresh database at once.

The checkpoint store and the ingest outbox create their tables on first use (``create_all``). That
checks for each table, then creates the ones missing, so two processes started together (two workers,
two ingest replicas) can both find a table missing; the second ``CREATE TABLE`` then fails (SQLite:
"table ... already exists"; PostgreSQL: a duplicate table or type) and, unhandled, stops a worker at
start.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, MetaData
from sqlalchemy.exc import DBAPIError

__all__ = ["create_missing_tables"]

log = logging.getLogger(__name__)

#: attempts, and the pause before the next one grows by this much each time (seconds)
_ATTEMPTS = 5
_PAUSE = 0.2


def create_missing_tables(metadata: MetaData, engine: Engine) -> None:
    """``metadata.create_all(engine)``, safe against another process creating the same tables.

    When the creation fails, it waits a moment and checks again: once the other process has
    committed its tables there is nothing left to do. (One more check is not always enough: on
    SQLite the second look can come while the other creation still holds the database, and find
    the table missing again.) A failure that is not that race (no permission, no database) fails
    every attempt, and the last one is raised.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            metadata.create_all(engine)
            return
        except DBAPIError as exc:
            if attempt == _ATTEMPTS:
                raise
            log.info("creating tables failed (%s); another process may be at it: checking again", exc.orig)
            time.sleep(_PAUSE * attempt)
