"""Alembic migrations of the alert service."""
