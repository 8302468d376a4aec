"""``qualitywatch up`` end to end, as a newcomer runs it (without demo data, on free ports).

It must print where to sign in and with which tokens; a major-hazard patrol report pushed through the
ingest API with the printed admin token must come back as an alert from the alert API; SIGINT must
stop the worker, the server and the broker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from schemas import uscc_check_char
from stream.broker import free_port

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _up_command(ports: dict[str, int], tmp_path: Path) -> list[str]:
    """``qualitywatch up`` without demo data on ``ports`` (option -> port), its state under ``tmp_path``."""
    cmd = [sys.executable, "-c", "from qualitywatch.cli import main; main()", "up", "--no-demo"]
    for option, port in ports.items():
        cmd += [option, str(port)]
    return [*cmd, "--workdir", str(tmp_path / "work")]


def _read_until_banner(proc: subprocess.Popen[bytes]) -> tuple[list[str], threading.Event]:
    """Collect ``up``'s standard output lines in a thread; the event is set once its banner is out."""
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode())
            if "Ctrl-C stops everything" in lines[-1]:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    return lines, banner


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """After a failed check: still stop everything ``up`` started (SIGINT, then kill)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _patrol(n: int, when: datetime, severity: str) -> dict[str, Any]:
    first = "91653022MA7F0000"[:16] + f"{n:01d}"
    return {
        "id": f"UP-P-{n}",
        "patrolled_at": when.isoformat(),
        "region": "653022",
        "industry": "food_processing",
        "enterprise_id": first + uscc_check_char(first),
        "inspector_id": "insp-up",
        "hazard": "aflatoxin_b1",
        "severity": severity,
        "action": "suspended",
        "note": "",
    }


def test_up_prints_how_to_sign_in_serves_ingest_and_alerts_and_stops_on_sigint(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("broker", "web", "http")}
    cmd = [sys.executable, "-c", "from qualitywatch.cli import main; main()", "up", "--no-demo"]
    cmd += [
        "--port",
        str(ports["broker"]),
        "--web-port",
        str(ports["web"]),
        "--http-port",
        str(ports["http"]),
    ]
    cmd += ["--workdir", str(tmp_path / "work")]
    log = (tmp_path / "up.err").open("wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    lines, banner = _read_until_banner(proc)
    try:
        assert banner.wait(90), "no banner; stderr:\n" + (tmp_path / "up.err").read_text()
        out = "".join(lines)
        base = f"http://127.0.0.1:{ports['http']}"
        assert f"Dashboard       {base}/dashboard/" in out
        assert f"{base}/api/v1/sampling-results" in out and f"{base}/api/v1/patrol-reports" in out
        assert f"Worker metrics  http://127.0.0.1:{ports['web']}/metrics" in out
        admin_token = re.search(r"admin, all counties\s+(\S+)", out)
        duty_token = re.search(r"duty officer, 653022 .*\n\s+(\S+)", out)
        assert admin_token and duty_token
        admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
        duty = {"Authorization": f"Bearer {duty_token.group(1)}"}

        with contextlib.ExitStack() as stack:
            client = stack.enter_context(httpx.Client(base_url=base, timeout=10))
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/dashboard/").status_code == 200
            me = client.get("/api/me", headers=duty)
            assert me.status_code == 200 and me.json()["county"] == "653022"
            now = datetime.now(UTC).replace(microsecond=0)
            # the major hazard, then a later report in the county that moves its event time past the
            # stage's allowed lateness (two days), which releases the first to the detectors
            for n, when, severity in ((1, now - timedelta(days=3), "major"), (2, now, "general")):
                r = client.post("/api/v1/patrol-reports", json=_patrol(n, when, severity), headers=admin)
                assert r.status_code == 201, r.text
            deadline = time.monotonic() + 60
            items: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not items:
                items = client.get("/api/alerts", params={"kind": "site"}, headers=admin).json()["items"]
                time.sleep(0.5)
            assert items, "no site alert within 60 s; stderr:\n" + (tmp_path / "up.err").read_text()
            assert items[0]["region"] == "653022" and items[0]["level"] in ("orange", "red")
            assert client.get(f"http://127.0.0.1:{ports['web']}/metrics").status_code == 200
            # a dashboard left open holds a live stream while everything stops
            live = stack.enter_context(
                client.stream("GET", "/api/events", params={"access_token": admin_token.group(1)})
            )
            assert live.status_code == 200
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    finally:
        _stop(proc)
        log.close()
    err = (tmp_path / "up.err").read_text()
    assert code == 0, err
    assert "killed" not in err and err.rstrip().endswith("stopped")
    assert not any(_listening(p) for p in ports.values())


def test_demo_history_is_fed_fast_up_to_the_warm_up_then_at_the_live_rate() -> None:
    from qualitywatch.cmd_up import EPOCH, demo_phases
    from qualitywatch.evaluation import SimConfig, simulate

    (fast, warm), (slow, live) = demo_phases(seed=1, years=2, warmup_weeks=42, warmup_rate=2000, rate=20)
    assert (fast, slow) == (2000, 20)
    cut = datetime.fromisoformat(EPOCH) + timedelta(weeks=42)

    def when(raw: bytes) -> datetime:
        d = json.loads(raw)
        return datetime.fromisoformat(d.get("sampled_at") or d["patrolled_at"])

    assert warm and live
    assert all(when(r) < cut for r in warm) and all(when(r) >= cut for r in live)
    times = [when(r) for r in warm + live]
    assert times == sorted(times)  # event-time order, as the stream expects
    sim = simulate(SimConfig(seed=1, years=2))
    assert len(warm) + len(live) == len(sim.records) + len(sim.patrols)


@pytest.mark.parametrize("taken", ["--port", "--web-port", "--http-port"])
def test_up_refuses_a_port_in_use_with_a_message_naming_the_option(taken: str, tmp_path: Path) -> None:
    ports = {option: free_port() for option in ("--port", "--web-port", "--http-port")}
    with socket.socket() as other:  # another program (or another `qualitywatch up`) holds the port
        other.bind(("127.0.0.1", ports[taken]))
        other.listen()
        done = subprocess.run(_up_command(ports, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"port {ports[taken]}" in done.stderr and taken in done.stderr
    assert "Traceback" not in done.stderr and "Ctrl-C stops everything" not in done.stdout
    assert not any(_listening(p) for option, p in ports.items() if option != taken)


def test_up_stops_everything_and_exits_with_status_1_when_its_worker_dies(tmp_path: Path) -> None:
    # a supervisor (systemd, a shell script, a terminal's exit status) must see that it did not end well
    ports = {option: free_port() for option in ("--port", "--web-port", "--http-port")}
    log = (tmp_path / "up.err").open("wb")
    proc = subprocess.Popen(_up_command(ports, tmp_path), stdout=subprocess.PIPE, stderr=log)
    _lines, banner = _read_until_banner(proc)
    try:
        assert banner.wait(90), "no banner; stderr:\n" + (tmp_path / "up.err").read_text()
        children = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(proc.pid)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        worker = [int(line.split()[0]) for line in children if " worker " in f" {line} "]
        assert len(worker) == 1, children
        subprocess.run(["kill", "-KILL", str(worker[0])], check=True)
        code = proc.wait(60)
    finally:
        _stop(proc)
        log.close()
    err = (tmp_path / "up.err").read_text()
    assert code == 1, err
    assert "the worker exited (status -9); stopping everything" in err and err.rstrip().endswith("stopped")
    assert not any(_listening(p) for p in ports.values())


#: a fictional prefecture: the packaged catalogue with three counties of its own
HUBIN_COUNTIES = [
    {"code": "990101", "name_zh": "湖滨市", "name_en": "Hubin City"},
    {"code": "990121", "name_zh": "山阳县", "name_en": "Shanyang County"},
    {"code": "990122", "name_zh": "河口县", "name_en": "Hekou County"},
]


def _hubin_catalogue(path: Path) -> Path:
    from schemas.catalogue import DEFAULT_PATH

    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["prefecture"] = {"code": "990100", "name_zh": "湖滨州", "name_en": "Hubin Prefecture"}
    data["regions"] = HUBIN_COUNTIES
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_up_runs_everything_on_the_configured_catalogue(tmp_path: Path) -> None:
    # a relative QW_CATALOGUE_PATH, as a prefecture's operator sets it in the directory of its file
    _hubin_catalogue(tmp_path / "hubin.yaml")
    ports = {option: free_port() for option in ("--port", "--web-port", "--http-port")}
    env = dict(os.environ, QW_CATALOGUE_PATH="hubin.yaml")
    log = (tmp_path / "up.err").open("wb")
    proc = subprocess.Popen(
        _up_command(ports, tmp_path), stdout=subprocess.PIPE, stderr=log, env=env, cwd=tmp_path
    )
    lines, banner = _read_until_banner(proc)
    try:
        assert banner.wait(90), "no banner; stderr:\n" + (tmp_path / "up.err").read_text()
        out = "".join(lines)
        # the demo duty officer is scoped to a county of the catalogue, named by it
        admin_token = re.search(r"admin, all counties\s+(\S+)", out)
        duty_token = re.search(r"duty officer, 990101 湖滨市 Hubin City\n\s+(\S+)", out)
        assert admin_token and duty_token, out
        admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
        duty = {"Authorization": f"Bearer {duty_token.group(1)}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['--http-port']}", timeout=10) as client:
            cat = client.get("/api/stats/catalogue", headers=duty).json()
            assert [c["code"] for c in cat["counties"]] == [c["code"] for c in HUBIN_COUNTIES]
            assert client.get("/api/me", headers=duty).json()["county"] == "990101"
            # ingest, the worker and the alert service share the catalogue: a major hazard in one of
            # its counties comes back as an alert the county's duty officer sees
            now = datetime.now(UTC).replace(microsecond=0)
            for n, when, severity in ((1, now - timedelta(days=3), "major"), (2, now, "general")):
                patrol = dict(_patrol(n, when, severity), region="990101")
                r = client.post("/api/v1/patrol-reports", json=patrol, headers=admin)
                assert r.status_code == 201, r.text
            r = client.post("/api/v1/patrol-reports", json=_patrol(3, now, "general"), headers=admin)
            assert r.status_code == 422  # Akto is not a county of this catalogue
            deadline = time.monotonic() + 60
            items: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not items:
                items = client.get("/api/alerts", params={"kind": "site"}, headers=duty).json()["items"]
                time.sleep(0.5)
            assert items, "no site alert within 60 s; stderr:\n" + (tmp_path / "up.err").read_text()
            assert items[0]["region"] == "990101"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        _stop(proc)
        log.close()
    assert code == 0, (tmp_path / "up.err").read_text()
    assert not any(_listening(p) for p in ports.values())


def test_demo_data_follows_the_catalogue(tmp_path: Path) -> None:
    from qualitywatch.cmd_up import demo_phases
    from schemas import load_catalogue

    catalogue = load_catalogue(_hubin_catalogue(tmp_path / "hubin.yaml"))
    phases = demo_phases(seed=1, years=2, warmup_weeks=4, warmup_rate=2000, rate=20, catalogue=catalogue)
    regions = {json.loads(raw)["region"] for _rate, lines in phases for raw in lines}
    assert regions == {c["code"] for c in HUBIN_COUNTIES}


def test_up_refuses_a_catalogue_it_cannot_load_naming_the_variable(tmp_path: Path) -> None:
    ports = {option: free_port() for option in ("--port", "--web-port", "--http-port")}
    env = dict(os.environ, QW_CATALOGUE_PATH=str(tmp_path / "missing.yaml"))
    done = subprocess.run(_up_command(ports, tmp_path), capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: invalid settings: QW_CATALOGUE_PATH: cannot read catalogue {tmp_path / 'missing.yaml'}: "
        "No such file or directory\n"
    )
    assert not any(_listening(p) for p in ports.values())
