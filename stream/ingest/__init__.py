"""Ingest for inspectors: validate records, keep them in an outbox, relay them to Kafka.

* :mod:`.service` — accept one record or many, with a per-row outcome (accepted / duplicate /
  rejected with field and reason); idempotent by record id, conflicts on changed content;
* :mod:`.tabular` — CSV, XLSX and JSONL files, wire-contract or Chinese lab-template headers;
* :mod:`.relay` — the outbox relay to ``qw.sampling-results`` / ``qw.patrol-reports``;
* :mod:`.api` — the FastAPI router (``create_ingest_router``), authenticated by a verifier.
"""

from .api import create_ingest_router
from .auth import PUSH_ROLES, Principal, Verifier, static_verifier
from .errors import (
    BadPayload,
    Conflict,
    Forbidden,
    IngestError,
    InvalidRequest,
    PayloadTooLarge,
    Rejected,
    Unauthenticated,
)
from .models import OutboxRecord, RecordKind, migrate_store, open_store
from .relay import OutboxRelay
from .service import RawRow, RowOutcome, Summary, canonical_record, submit_many, submit_one, summarise
from .settings import IngestSettings, load_ingest_settings
from .tabular import Table, TableError, parse_table

__all__ = [
    "PUSH_ROLES",
    "BadPayload",
    "Conflict",
    "Forbidden",
    "IngestError",
    "IngestSettings",
    "InvalidRequest",
    "OutboxRecord",
    "OutboxRelay",
    "PayloadTooLarge",
    "Principal",
    "RawRow",
    "RecordKind",
    "Rejected",
    "RowOutcome",
    "Summary",
    "Table",
    "TableError",
    "Unauthenticated",
    "Verifier",
    "canonical_record",
    "create_ingest_router",
    "load_ingest_settings",
    "migrate_store",
    "open_store",
    "parse_table",
    "static_verifier",
    "submit_many",
    "submit_one",
    "summarise",
]
