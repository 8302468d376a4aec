"""Alembic environment of the ingest outbox's migrations (see :mod:`stream.migrations`)."""

from stream.migrations import run_environment

run_environment()
