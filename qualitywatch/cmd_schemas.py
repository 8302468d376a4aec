"""``qualitywatch schemas export DIR``: write the wire contract as JSON Schema files."""

from __future__ import annotations

from pathlib import Path

import click

from schemas import export_json_schemas


@click.group("schemas")
def command() -> None:
    """The wire contract (records and warnings)."""


@command.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export(directory: Path) -> None:
    """Write one JSON Schema file per record type into DIRECTORY."""
    try:
        written = export_json_schemas(directory)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {exc.filename or directory}: {exc.strerror or exc}"
        ) from exc
    for path in written:
        click.echo(str(path))
