"""``qualitywatch evaluate RUN_DIR ...``: score warnings against the truth, next to the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qualitywatch.evaluation import evaluate_runs, format_report, report_json
from qualitywatch.options import catalogue_option, catalogue_path, load_configured_catalogue


@click.command("evaluate")
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--warnings",
    "warnings_name",
    default="warnings.jsonl",
    show_default=True,
    help="Name of the warnings file inside each run directory.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the figures (per method, kind, size and incident) as JSON.",
)
@click.option("--no-baselines", is_flag=True, help="Score QualityWatch only (faster).")
@catalogue_option
def command(
    run_dirs: tuple[Path, ...],
    warnings_name: str,
    json_out: Path | None,
    no_baselines: bool,
    catalogue: Path | None,
) -> None:
    """Score each RUN_DIR (truth.json, events.jsonl, warnings) and print the pooled table."""
    seen: dict[Path, Path] = {}
    for d in run_dirs:
        first = seen.setdefault(d.resolve(), d)
        if first is not d:
            same = f"{d} is given twice" if str(first) == str(d) else f"{d} and {first} are the same run"
            raise click.UsageError(f"{same}: its incidents would count twice")
    for d in run_dirs:
        for name in ("truth.json", warnings_name) + (() if no_baselines else ("events.jsonl",)):
            if not (d / name).is_file():
                raise click.UsageError(f"{d}: missing {name}")
    cat = load_configured_catalogue(catalogue_path(catalogue))
    try:
        report = evaluate_runs(
            list(run_dirs), warnings_name=warnings_name, baselines=not no_baselines, catalogue=cat
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_report(report))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(report_json(report), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_out}: {exc.strerror or exc}") from exc
        click.echo(f"figures: {json_out}")
