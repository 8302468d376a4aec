"""Options shared by the offline commands (``simulate``, ``replay``, ``evaluate``).

The catalogue follows the setting the stream worker and the services read (``QW_CATALOGUE_PATH``,
:class:`stream.settings.StreamSettings`),
so another prefecture's analyst who set it gets the same counties offline as online; ``--catalogue``
wins over it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from schemas import Catalogue, CatalogueError, load_catalogue

__all__ = ["catalogue_option", "catalogue_path", "load_configured_catalogue"]

F = TypeVar("F", bound=Callable[..., object])


def catalogue_option(func: F) -> F:
    """``--catalogue PATH`` (default: ``QW_CATALOGUE_PATH``, else the packaged catalogue)."""
    return click.option(
        "--catalogue",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Reference catalogue (YAML); default: the QW_CATALOGUE_PATH setting (what the worker and "
        "the services read), else the packaged Kizilsu catalogue.",
    )(func)


def catalogue_path(given: Path | None) -> Path | None:
    """``given``, else the ``QW_CATALOGUE_PATH`` setting, else ``None`` (the packaged catalogue)."""
    if given is not None:
        return given
    from .settings import stream_settings

    configured = stream_settings().catalogue_path
    return Path(configured) if configured else None


def load_configured_catalogue(path: Path | None) -> Catalogue:
    """The catalogue at ``path`` (see :func:`catalogue_path`), or the reason it cannot be used."""
    try:
        return load_catalogue(path)
    except CatalogueError as exc:
        raise click.ClickException(str(exc)) from exc
