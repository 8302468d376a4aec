"""Alembic migrations of the worker checkpoint store (``stream.checkpoint.HISTORY``)."""
