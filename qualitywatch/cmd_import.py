"""``qualitywatch import FILE``: accept a lab spreadsheet or a record file into the ingest outbox.

The same service as ``POST /api/v1/imports``: CSV or XLSX with wire-contract or Chinese lab-template
headers, or JSONL records; per-row outcomes, a progress bar, and a summary of the rejected rows. The
accepted records wait in the outbox until the server's relay sends them to Kafka. Local database
access is trusted: no token is asked for. Exits with status 1 when any row was
rejected (the good rows are accepted all the same), 2 when the file cannot be read.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from tqdm import tqdm

from schemas import default_catalogue, load_catalogue
from stream.ingest import RowOutcome, open_store, parse_table, submit_many, summarise
from stream.ingest.api import default_import_workers
from stream.ingest.tabular import TableError

from .settings import ingest_settings

__all__ = ["command"]

_SHOWN = 20


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["sampling", "patrol"]),
    default=None,
    help="what the rows are (guessed from the headers when omitted)",
)
@click.option(
    "--database-url", default=None, help="the ingest store (default: QW_DATABASE_URL or the settings)"
)
@click.option(
    "--catalogue",
    "catalogue_path",
    default=None,
    help="a catalogue YAML (default: the QW_CATALOGUE_PATH setting, else the packaged one)",
)
@click.option("--submitted-by", default="cli", show_default=True, help="recorded with each accepted record")
@click.option(
    "--rejected-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write every rejected row (row, id, field, reason) to this CSV",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="validation worker processes for files of more than one chunk (default: one per CPU, at most 4)",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
def command(
    file: Path,
    kind: str | None,
    database_url: str | None,
    catalogue_path: str | None,
    submitted_by: str,
    rejected_csv: Path | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """Import FILE (.csv, .xlsx or .jsonl) of sampling results or patrol reports."""
    settings = ingest_settings()
    path = catalogue_path or settings.catalogue_path
    catalogue = load_catalogue(path) if path else default_catalogue()
    try:
        table = parse_table(file.read_bytes(), filename=file.name, kind=kind, catalogue=catalogue)
    except TableError as exc:
        click.echo(f"{file}: {exc}", err=True)
        sys.exit(2)
    sessions = open_store(database_url or settings.database_url)
    if table.ignored_columns:
        click.echo(f"ignored columns: {', '.join(table.ignored_columns)}", err=True)
    bar = tqdm(desc=f"{file.name} ({table.kind.value})", unit=" rows", disable=quiet, file=sys.stderr)
    with bar, sessions() as session:
        outcomes = submit_many(
            session,
            kind=table.kind,
            rows=table,
            catalogue=catalogue,
            submitted_by=submitted_by,
            on_chunk=lambda done: bar.update(len(done)),
            workers=default_import_workers() if workers is None else workers,
        )
    s = summarise(outcomes)
    click.echo(f"{s.total} rows: {s.accepted} accepted, {s.duplicate} duplicate, {s.rejected} rejected")
    for o in s.rejected_rows[:_SHOWN]:
        click.echo(f"  row {o.row}{f' ({o.id})' if o.id else ''}: {_reasons(o)}")
    if s.rejected > _SHOWN:
        click.echo(f"  … and {s.rejected - _SHOWN} more" + ("" if rejected_csv else " (see --rejected-csv)"))
    if rejected_csv is not None:
        with rejected_csv.open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "id", "field", "reason"])
            for o in s.rejected_rows:
                for e in o.errors:
                    w.writerow([o.row, o.id or "", e.field, e.reason])
    if s.rejected:
        sys.exit(1)


def _reasons(o: RowOutcome) -> str:
    return "; ".join(str(e) for e in o.errors)
