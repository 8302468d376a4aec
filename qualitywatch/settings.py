"""The settings a command reads (``QW_*``), or a one-line error naming each variable that cannot be used.

The error never repeats the values (pydantic's would, secrets among them) and ends the command with
status 1 before it starts anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from alerts import AlertSettings
    from stream.ingest import IngestSettings
    from stream.settings import StreamSettings

__all__ = ["alert_settings", "ingest_settings", "stream_settings"]

T = TypeVar("T")


def _load(load: Callable[..., T], overrides: dict[str, Any]) -> T:
    from schemas.settings import SettingsError

    try:
        return load(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def stream_settings(**overrides: Any) -> StreamSettings:
    """The stream's settings (worker, ``push``, the ingest relay)."""
    from stream.settings import load_stream_settings

    return _load(load_stream_settings, overrides)


def ingest_settings(**overrides: Any) -> IngestSettings:
    """The ingest service's settings (outbox, relay, limits)."""
    from stream.ingest.settings import load_ingest_settings

    return _load(load_ingest_settings, overrides)


def alert_settings(**overrides: Any) -> AlertSettings:
    """The alert service's settings."""
    from alerts import load_settings

    return _load(load_settings, overrides)
