"""``qualitywatch simulate``: write a synthetic sampling stream with its ground truth."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from pathlib import Path

import click

from qualitywatch.evaluation import SimConfig, simulate, write_simulation
from qualitywatch.options import catalogue_option, catalogue_path, load_configured_catalogue


@click.command("simulate")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same output).")
@click.option(
    "--years",
    type=click.IntRange(2, 9),
    default=5,
    show_default=True,
    help="Years of weekly sampling, from Monday 2021-01-04.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sim"),
    show_default=True,
    help="Directory for events.jsonl, patrols.jsonl and truth.json.",
)
@catalogue_option
def command(seed: int, years: int, out_dir: Path, catalogue: Path | None) -> None:
    """Simulate sampling results, patrol reports and injected incidents (the truth)."""
    sim = simulate(SimConfig(seed=seed, years=years), load_configured_catalogue(catalogue_path(catalogue)))
    try:
        paths = write_simulation(sim, out_dir)
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}") from exc
    kinds: dict[str, int] = {}
    for inc in sim.truth["incidents"]:
        kinds[inc["kind"]] = kinds.get(inc["kind"], 0) + 1
    click.echo(
        f"{len(sim.records)} sampling records (with resubmissions), {len(sim.patrols)} patrol reports, "
        f"{sim.truth['weeks']} weeks, incidents: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    for name, path in paths.items():
        click.echo(f"{name}: {path}")
    # Replay refuses records after its validation clock (the wall clock by default), and the
    # simulated weeks can run past today: the next step names a clock at the end of the weeks.
    end = datetime.fromisoformat(sim.truth["start"]) + timedelta(weeks=sim.truth["weeks"])
    q = {name: shlex.quote(str(path)) for name, path in paths.items()}
    click.echo(
        f"next: qualitywatch replay {q['events']} --patrols {q['patrols']} "
        f"--out {shlex.quote(str(out_dir / 'warnings.jsonl'))} --now {end.isoformat()}"
    )
