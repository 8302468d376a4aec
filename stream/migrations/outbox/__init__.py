"""Alembic migrations of the ingest outbox (``stream.ingest.models.HISTORY``)."""
