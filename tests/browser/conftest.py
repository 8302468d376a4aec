"""Fixtures of the dashboard's browser tests: a real uvicorn server of the alert service on a free
loopback port over a temporary SQLite database, seeded with twelve weeks of cell statistics and a few
warnings, and Debian's headless chromium driven by Selenium (never anything downloaded).

Warnings reach the service through ``POST /api/warnings`` — the same pipeline function the topic
consumer calls — so a test sees them arrive on the live stream without a broker.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from dashboard_seed import AKTO, WEEKS, WUQIA, Service, cell_weeks, make_warning

from alerts.api import create_app
from alerts.auth.service import create_token
from alerts.runtime import build_runtime
from alerts.settings import AlertSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: the README's pictures; a plain test run writes its screenshots to a temporary folder instead, and
#: ``QW_UPDATE_SCREENSHOTS=1 make test`` (or pytest tests/browser) refreshes the committed ones
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    db = tmp_path_factory.mktemp("dashboard") / "alerts.db"
    settings = AlertSettings(
        environment="test",
        database_url=f"sqlite:///{db}",
        webhook_secret="browser-test-secret",
        smtp_password="browser-test-secret",
        consume=False,
    )
    runtime = build_runtime(settings, notifiers={})
    tokens = {}
    with runtime.session() as s:
        for name, role, county in (
            ("admin", "admin", None),
            ("duty", "duty_officer", None),
            ("akto", "duty_officer", AKTO),
        ):
            _, tokens[name] = create_token(
                s, name=name, role=role, county=county, now=runtime.clock.now(), catalogue=runtime.catalogue
            )
        s.commit()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the alert service did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as client:
        svc = Service(url=url, tokens=tokens, cells=cell_weeks(), client=client)
        r = client.post(
            "/api/stats/cell-weeks",
            json={"cells": svc.cells},
            headers={"Authorization": f"Bearer {tokens['admin']}"},
        )
        r.raise_for_status()
        history = {
            "akto-yellow": make_warning(svc.cells, k=WEEKS - 3, level="yellow", region=AKTO),
            "akto": make_warning(svc.cells, k=WEEKS - 2, level="orange", region=AKTO),
            "wuqia": make_warning(
                svc.cells, k=WEEKS - 1, level="red", region=WUQIA, detector="policy_target", expected=0.08
            ),
            "food": make_warning(
                svc.cells,
                k=WEEKS - 1,
                level="yellow",
                industry="food_processing",
                detector="industry_rate",
                expected=0.02,
            ),
        }
        for key, w in history.items():
            svc.alert_ids[key] = svc.push(w)["alert_id"]
        yield svc
    server.should_exit = True
    thread.join(timeout=10)
    runtime.session_factory.kw["bind"].dispose()


def _chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless chromium on a new profile (desktop size, Chinese), its console kept for ``get_log``."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path_factory.mktemp("chromium-profile")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1366,768")
    options.add_argument("--lang=zh-CN")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _chromium(tmp_path_factory)


@pytest.fixture
def first_visit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A browser of its own that has never opened the dashboard: what it requests on a first page
    load (such as the site's icon) is not hidden by what the shared browser remembers."""
    yield from _chromium(tmp_path_factory)


@pytest.fixture
def page(browser: Any, service: Service) -> Iterator[Any]:
    """The browser on a fresh dashboard tab state (signed out, Chinese, desktop size)."""
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.get(f"{service.url}/dashboard/")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get(f"{service.url}/dashboard/")
    yield browser


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """``shot(driver, name)`` saves ``<name>.png`` (in ``docs/screenshots`` when refreshing them)."""
    folder = DOCS_SCREENSHOTS if os.environ.get("QW_UPDATE_SCREENSHOTS") else tmp_path_factory.mktemp("shots")

    def save(driver: Any, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        driver.execute_script("document.getElementById('toast').hidden = true;")
        assert driver.save_screenshot(str(path)), f"screenshot {name} was not written"
        return path

    return save
