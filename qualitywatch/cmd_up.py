"""``qualitywatch up``: everything on the embedded defaults, with demo data flowing, until Ctrl-C.

Starts the embedded broker, a stream worker (and the alert service once its sub-command exists),
then feeds simulated sampling results and patrol reports at a steady rate. Ctrl-C or SIGTERM stops
everything. The broker keeps data in memory only, so each run starts from empty topics and a fresh
checkpoint database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import click

__all__ = ["command"]

#: sub-commands started beside the worker when they are installed (the alert service, when it exists)
COMPANION_COMMANDS: tuple[str, ...] = ("alerts", "serve")


def _companions() -> list[list[str]]:
    from qualitywatch.cli import COMMANDS, _available

    return [
        ["serve"] if n == "serve" else [n, "serve"]
        for n in COMPANION_COMMANDS
        if n in COMMANDS and _available(n)
    ][:1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from qualitywatch.cli import main; main()", *args]


def _feed(settings: object, rate: float, seed: int, years: int, stop: threading.Event) -> None:
    from qualitywatch.evaluation import SimConfig, simulate
    from stream.producer import RecordPusher

    sim = simulate(SimConfig(seed=seed, years=years))
    stream = sorted(
        [(r["sampled_at"], json.dumps(r).encode()) for r in sim.records]
        + [(p["patrolled_at"], json.dumps(p).encode()) for p in sim.patrols]
    )
    click.echo(f"feeding {len(stream)} simulated records at {rate:.0f}/s", err=True)
    with RecordPusher(settings) as pusher:  # type: ignore[arg-type]
        t0 = time.monotonic()
        for n, (_when, raw) in enumerate(stream):
            if stop.is_set():
                break
            pusher.push_lines([raw])
            ahead = (n + 1) / rate - (time.monotonic() - t0)
            if ahead > 0:
                stop.wait(ahead)
    click.echo("demo data fed", err=True)


@click.command("up")
@click.option("--port", type=int, default=9092, show_default=True, help="Broker port.")
@click.option("--web-port", type=int, default=6066, show_default=True, help="Worker web port (/metrics).")
@click.option("--rate", type=float, default=200.0, show_default=True, help="Demo records per second.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulated demo data.")
@click.option("--years", type=int, default=2, show_default=True, help="Years of simulated demo data.")
@click.option("--no-demo", is_flag=True, help="Do not feed demo data.")
def command(port: int, web_port: int, rate: float, seed: int, years: int, no_demo: bool) -> None:
    """Run broker + worker (+ alert service) on the embedded defaults with demo data flowing."""
    from stream.broker import EmbeddedBroker
    from stream.settings import StreamSettings

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    workdir = Path(tempfile.mkdtemp(prefix="qualitywatch-up-"))
    broker = EmbeddedBroker(port=port).start()
    env = dict(os.environ)
    env.update(
        QW_BOOTSTRAP_SERVERS=broker.bootstrap,
        QW_EPOCH="2021-01-04T00:00:00+08:00",  # the simulator's first Monday
        QW_CHECKPOINT_URL=f"sqlite:///{workdir / 'checkpoints.db'}",
        QW_WEB_PORT=str(web_port),
    )
    settings = StreamSettings(bootstrap_servers=broker.bootstrap)
    procs = [subprocess.Popen(_cli("worker"), env=env)]
    procs += [subprocess.Popen(_cli(*args), env=env) for args in _companions()]
    click.echo(
        f"broker {broker.bootstrap}; worker metrics http://127.0.0.1:{web_port}/metrics; "
        f"warnings on {settings.topic_name('warnings')}; Ctrl-C to stop",
        err=True,
    )
    stop = threading.Event()
    feeder = None
    if not no_demo:
        feeder = threading.Thread(target=_feed, args=(settings, rate, seed, years, stop), daemon=True)
        feeder.start()
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        click.echo("a process exited; stopping everything", err=True)
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if feeder is not None:
            feeder.join(5)
        broker.stop()
