"""Settings of the ingest service: one frozen object read from ``QW_*`` environment variables.

Kafka connection and topic names come from :class:`stream.settings.StreamSettings` (the same
``QW_BOOTSTRAP_SERVERS`` and ``QW_TOPIC_PREFIX``); these are the ingest-only knobs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import settings_error

__all__ = ["IngestSettings", "load_ingest_settings"]


class IngestSettings(BaseSettings):
    """Where accepted records are kept and how the relay and the API behave."""

    model_config = SettingsConfigDict(env_prefix="QW_", frozen=True, extra="ignore")

    #: the outbox database (SQLite for development, PostgreSQL in production)
    database_url: str = "sqlite:///qualitywatch.db"
    catalogue_path: str | None = None
    relay_enabled: bool = True
    relay_batch_size: int = Field(default=1000, ge=1)
    relay_poll_interval_s: float = Field(default=0.5, gt=0)
    relay_backoff_initial_s: float = Field(default=0.2, gt=0)
    relay_backoff_max_s: float = Field(default=10.0, gt=0)
    max_batch_rows: int = Field(default=100_000, ge=1)
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


def load_ingest_settings(**overrides: Any) -> IngestSettings:
    """Read the settings from the environment (``QW_*``), with explicit overrides on top; settings that
    cannot be used raise :class:`schemas.settings.SettingsError` naming each variable, not its value."""
    try:
        return IngestSettings(**overrides)
    except ValidationError as exc:
        raise settings_error(exc) from None
