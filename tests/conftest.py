"""Shared fixtures: a running app server for the browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CELLANG_CHROMIUM", "/usr/bin/chromium"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `streamlit run app.py` on a free loopback port; yield its URL; stop it afterwards."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]
    with open(log, "w") as handle:
        server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright; never downloads a browser."""
    if not CHROMIUM.exists():
        # A browser test that silently skips looks like a pass: fail unless the skip was asked for by name.
        if os.environ.get("CELLANG_SKIP_BROWSER") == "1":
            pytest.skip(f"BROWSER TESTS NOT RUN: {CHROMIUM} is missing and CELLANG_SKIP_BROWSER=1 was set")
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium when run as root; otherwise "
                    "run `sudo apt-get install chromium`, or set CELLANG_SKIP_BROWSER=1 to skip the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, app_url):  # type: ignore[no-untyped-def]
    """A fresh browser tab (own cookies and downloads) on a desktop-sized window."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1100})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    yield tab
    context.close()


def wait_until_settled(page, timeout_ms: int = 60_000) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit has finished its rerun: no running indicator and no stale elements, so
    each widget is on the page exactly once."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-testid=\"stElementContainer\"][data-stale=\"true\"]')",
        timeout=timeout_ms,
    )
