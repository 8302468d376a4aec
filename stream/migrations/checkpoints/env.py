"""Alembic environment of the checkpoint store's migrations (see :mod:`stream.migrations`)."""

from stream.migrations import run_environment

run_environment()
