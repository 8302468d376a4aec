"""``qualitywatch up``: the whole platform on the embedded defaults, with demo data flowing, until Ctrl-C.

Starts the embedded broker, a stream worker and ``qualitywatch serve`` (alert service, dashboard and
ingest API on one port), issues a demo admin token and a county-scoped duty officer token, prints
where to sign in, then feeds simulated sampling results and patrol reports: the first weeks of
history fast (the count detectors need about 40 weeks of baseline before they may fire), the rest at
a live pace. Ctrl-C or SIGTERM stops everything. The broker keeps data in memory only, so each run
starts from empty topics, a fresh checkpoint database and a fresh alert database in a work
directory (removed at the end unless ``--workdir`` names one).

Everything follows one reference catalogue (``QW_CATALOGUE_PATH``, else the packaged one): the
worker, the alert service and ingest read the same file, the demo data are its counties' and the
duty officer's county is one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from schemas import Catalogue

__all__ = ["DEMO_COUNTY", "EPOCH", "DemoTokens", "command", "demo_phases", "issue_demo_tokens"]

#: the simulator's first Monday: the stream's first watched week
EPOCH = "2021-01-04T00:00:00+08:00"
#: the county of the demo duty officer's token (阿克陶县, Akto County); with a catalogue that does not
#: have it, the catalogue's first county
DEMO_COUNTY = "653022"
#: client timings for the embedded broker alone (it joins a group after half the session timeout and
#: holds a fetch for about half the fetch wait); every consumer ``up`` starts gets them
EMBEDDED_TIMINGS = {"QW_SESSION_TIMEOUT_MS": "6000", "QW_FETCH_MAX_WAIT_MS": "100"}
POSITIVE = click.FloatRange(min=0, min_open=True)
#: seconds each process gets to stop after SIGTERM before it is killed
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DemoTokens:
    admin: str
    duty_officer: str
    county: str


def issue_demo_tokens(database_url: str, catalogue: Catalogue, county: str = DEMO_COUNTY) -> DemoTokens:
    """Migrate the alert database and issue an admin token and a duty officer token for ``county``
    (one of ``catalogue``'s)."""
    from alerts.auth.service import create_token
    from alerts.db import make_engine, make_session_factory, migrate

    engine = make_engine(database_url)
    try:
        migrate(engine)
        now = datetime.now(UTC)
        with make_session_factory(engine)() as session:
            _, admin = create_token(
                session,
                name="demo-admin",
                role="admin",
                county=None,
                now=now,
                catalogue=catalogue,
                actor="up",
            )
            _, duty = create_token(
                session,
                name=f"demo-duty-{county}",
                role="duty_officer",
                county=county,
                now=now,
                catalogue=catalogue,
                actor="up",
            )
            session.commit()
    finally:
        engine.dispose()
    return DemoTokens(admin=admin, duty_officer=duty, county=county)


def demo_phases(
    seed: int,
    years: int,
    warmup_weeks: int,
    warmup_rate: float,
    rate: float,
    catalogue: Catalogue | None = None,
) -> list[tuple[float, list[bytes]]]:
    """Simulated records and patrols of ``catalogue`` (default: the packaged one) in event-time order,
    split into (records/s, lines) phases: the first ``warmup_weeks`` weeks at ``warmup_rate``, the rest
    at ``rate``."""
    from qualitywatch.evaluation import SimConfig, simulate

    sim = simulate(SimConfig(seed=seed, years=years), catalogue)
    events = sorted(
        [(datetime.fromisoformat(r["sampled_at"]), r["id"], json.dumps(r).encode()) for r in sim.records]
        + [(datetime.fromisoformat(p["patrolled_at"]), p["id"], json.dumps(p).encode()) for p in sim.patrols]
    )
    cut = datetime.fromisoformat(EPOCH) + timedelta(weeks=warmup_weeks)
    warm = [raw for when, _id, raw in events if when < cut]
    live = [raw for when, _id, raw in events if when >= cut]
    return [(warmup_rate, warm), (rate, live)]


def _feed(settings: Any, phases: Sequence[tuple[float, list[bytes]]], stop: threading.Event) -> None:
    """Push each phase's lines at its rate (in small slices), until done or ``stop``."""
    from stream.producer import RecordPusher

    with RecordPusher(settings) as pusher:
        for n, (rate, lines) in enumerate(phases):
            if not lines:
                continue
            click.echo(f"demo: feeding {len(lines)} simulated records at {rate:.0f}/s", err=True)
            t0 = time.monotonic()
            sent = 0
            while sent < len(lines) and not stop.is_set():
                due = min(len(lines), int((time.monotonic() - t0) * rate) + 1)
                if due > sent:
                    pusher.push_lines(lines[sent:due])
                    sent = due
                stop.wait(0.05)
            if stop.is_set():
                return
            pusher.flush()
            if n + 1 < len(phases):
                click.echo("demo: warm-up history fed; count warnings can fire from here on", err=True)
    click.echo("demo: all simulated data fed", err=True)


def _demo(
    settings: Any, demo: tuple[int, int, int, float, float], catalogue: Catalogue, stop: threading.Event
) -> None:
    _feed(settings, demo_phases(*demo, catalogue=catalogue), stop)


def _configured_catalogue() -> tuple[Catalogue, Path | None]:
    """The catalogue of ``QW_CATALOGUE_PATH`` and its absolute path (the processes run in the work
    directory), or the packaged one and ``None``; one line naming the variable when it cannot be loaded."""
    from schemas import CatalogueError, load_catalogue

    from .options import catalogue_path

    path = catalogue_path(None)
    if path is not None:
        path = path.resolve()
    try:
        return load_catalogue(path), path
    except CatalogueError as exc:
        reason = " ".join(str(exc).split())
        raise click.ClickException(f"invalid settings: QW_CATALOGUE_PATH: {reason}") from None


def _child_settings(*, bootstrap: str, web_port: int, host: str, http_port: int) -> dict[str, str]:
    """The ``QW_*`` variables ``up`` sets for its worker and server on top of its own environment (all
    but where their databases are, in the work directory)."""
    return {
        **EMBEDDED_TIMINGS,
        "QW_PROFILE": "embedded",
        "QW_ENVIRONMENT": "development",
        "QW_BOOTSTRAP_SERVERS": bootstrap,  # the stream, the ingest relay and the alert service
        "QW_EPOCH": EPOCH,
        "QW_WEB_PORT": str(web_port),
        "QW_EXTERNAL_URL": f"http://{host}:{http_port}",
    }


def _check_settings(variables: dict[str, str]) -> Any:
    """The stream settings the worker and the server will read (this environment with ``variables`` on
    top), once the ingest's and the alert service's are checked too: a setting that cannot be used
    stops ``up`` before anything starts, with one line naming the variable."""
    from qualitywatch.settings import alert_settings, ingest_settings, stream_settings

    fields = {name.removeprefix("QW_").lower(): value for name, value in variables.items()}
    alert_settings(**fields)
    ingest_settings(**fields)
    return stream_settings(**fields)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from qualitywatch.cli import main; main()", *args]


def _wait_http(url: str, procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> bool:
    """True once ``url`` answers 200; False when a process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def _port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (a socket in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _check_ports_free(ports: Sequence[tuple[str, str, int, str]]) -> None:
    """Refuse to start when one of ``(host, what, port, option)`` is taken: otherwise a client of this
    run could reach another run's broker or server (and the banner show tokens that do not work there)."""
    for host, what, port, option in ports:
        if _port_in_use(host, port):
            raise click.ClickException(
                f"port {port} ({what}) is in use on {host}: is another `qualitywatch up` running? "
                f"Stop it, or choose another port with {option}."
            )


def _banner(
    *,
    base: str,
    tokens: DemoTokens,
    catalogue: Catalogue,
    web_port: int,
    broker: str,
    workdir: Path,
    demo: bool,
) -> str:
    region = catalogue.region(tokens.county)
    county = f"{tokens.county} {region.name_zh} {region.name_en}" if region else tokens.county
    data = "demo data flowing" if demo else "no demo data"
    return "\n".join(
        [
            "",
            f"QualityWatch is up — embedded broker, SQLite in {workdir}, {data}.",
            "",
            f"  Dashboard       {base}/dashboard/",
            "    sign in with one of these tokens (shown once; valid for this run):",
            f"      admin, all counties           {tokens.admin}",
            f"      duty officer, {county}",
            f"                                    {tokens.duty_officer}",
            f"  API docs        {base}/docs",
            f"  Ingest          {base}/api/v1/sampling-results   {base}/api/v1/patrol-reports",
            f"                  {base}/api/v1/imports   (Authorization: Bearer <admin token>)",
            f"  Alert API       {base}/api/alerts",
            f"  Worker metrics  http://127.0.0.1:{web_port}/metrics",
            f"  Broker          {broker}",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


@click.command("up")
@click.option("--port", type=int, default=9092, show_default=True, help="Broker port.")
@click.option("--web-port", type=int, default=6066, show_default=True, help="Worker web port (/metrics).")
@click.option(
    "--http-port",
    type=int,
    default=8000,
    show_default=True,
    help="Port of the dashboard, alert and ingest API.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address of the HTTP port.")
@click.option(
    "--rate", type=POSITIVE, default=20.0, show_default=True, help="Demo records/s after the warm-up."
)
@click.option(
    "--warmup-rate",
    type=POSITIVE,
    default=2000.0,
    show_default=True,
    help="Demo records/s during the warm-up.",
)
@click.option(
    "--warmup-weeks",
    type=click.IntRange(min=0),
    default=44,
    show_default=True,
    help="Weeks of demo history fed at --warmup-rate (count detectors need about 40 of baseline).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulated demo data.")
@click.option(
    "--years", type=click.IntRange(min=2), default=2, show_default=True, help="Years of simulated demo data."
)
@click.option("--no-demo", is_flag=True, help="Do not feed demo data.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the alert and ingest databases here (default: a temporary directory removed at the end).",
)
def command(
    port: int,
    web_port: int,
    http_port: int,
    host: str,
    rate: float,
    warmup_rate: float,
    warmup_weeks: int,
    seed: int,
    years: int,
    no_demo: bool,
    workdir: Path | None,
) -> None:
    """Run broker + worker + serve (dashboard, alert and ingest API) with demo data, until Ctrl-C."""
    from stream.broker import EmbeddedBroker

    variables = _child_settings(
        bootstrap=f"127.0.0.1:{port}", web_port=web_port, host=host, http_port=http_port
    )
    settings = _check_settings(variables)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # also when started with SIGINT ignored (a background job)
    catalogue, catalogue_file = _configured_catalogue()
    county = DEMO_COUNTY if catalogue.region(DEMO_COUNTY) else catalogue.region_codes[0]
    _check_ports_free(
        [
            ("127.0.0.1", "the embedded broker", port, "--port"),
            ("127.0.0.1", "the worker's /metrics", web_port, "--web-port"),
            (host, "the dashboard and APIs", http_port, "--http-port"),
        ]
    )
    own_workdir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="qualitywatch-up-")) if workdir is None else workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("checkpoints.db*"):  # the broker forgot the offsets they point at
        stale.unlink()
    alerts_db = f"sqlite:///{work / 'alerts.db'}"
    broker = EmbeddedBroker(port=port).start()
    settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
    procs: list[subprocess.Popen[bytes]] = []
    failed = False  # a process died, or the server never came up: exit with status 1
    stop = threading.Event()
    feeder: threading.Thread | None = None
    try:
        env = {
            **os.environ,
            **variables,
            "QW_BOOTSTRAP_SERVERS": broker.bootstrap,
            "QW_CHECKPOINT_URL": f"sqlite:///{work / 'checkpoints.db'}",
            "QW_DATABASE_URL": alerts_db,
        }
        if catalogue_file is not None:  # the worker, the alert service and ingest read the same file
            env["QW_CATALOGUE_PATH"] = str(catalogue_file)
        tokens = issue_demo_tokens(alerts_db, catalogue, county)
        serve_args = ["serve", "--host", host, "--port", str(http_port), "--log-level", "warning"]
        serve_args += ["--ingest-database-url", f"sqlite:///{work / 'ingest.db'}"]
        procs.append(subprocess.Popen(_cli("worker", "--loglevel", "warning"), env=env, cwd=work))
        procs.append(subprocess.Popen(_cli(*serve_args), env=env, cwd=work))
        base = f"http://{host}:{http_port}"
        if not _wait_http(f"{base}/healthz", procs, timeout=90):
            click.echo("the server did not come up; stopping everything", err=True)
            failed = True
            return
        if not no_demo:
            demo = (seed, years, warmup_weeks, warmup_rate, rate)
            feeder = threading.Thread(
                target=_demo, args=(settings, demo, catalogue, stop), daemon=True, name="qw-demo"
            )
            feeder.start()
        click.echo(
            _banner(
                base=base,
                tokens=tokens,
                catalogue=catalogue,
                web_port=web_port,
                broker=broker.bootstrap,
                workdir=work,
                demo=not no_demo,
            ),
            nl=False,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        name, code = next(
            (n, p.returncode)
            for p, n in zip(procs, ("worker", "serve"), strict=False)
            if p.poll() is not None
        )
        click.echo(f"the {name} exited (status {code}); stopping everything", err=True)
        failed = True  # a supervisor (systemd, a terminal's exit status) must see that it did not end well
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, name in zip(procs, ("worker", "serve"), strict=False):
            try:
                p.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                click.echo(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s; killed", err=True)
                p.kill()
                p.wait()
        if feeder is not None:
            feeder.join(5)
        broker.stop()
        if own_workdir:
            shutil.rmtree(work, ignore_errors=True)
        click.echo("stopped", err=True)
        if failed:
            raise SystemExit(1)
