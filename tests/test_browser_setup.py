"""A missing Chromium must not pass for a browser-test run: it fails, unless the skip is asked for by name."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

BROWSER_TEST = "tests/test_browser.py::test_home_page_shows_corpus_and_device"


def run_browser_test(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "CELLANG_SKIP_BROWSER"}
    environment.update(CELLANG_CHROMIUM=str(REPO_ROOT / "no-such-chromium"), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", BROWSER_TEST],
                          cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300)


def test_missing_chromium_fails_and_says_how_to_install_it() -> None:
    result = run_browser_test()
    assert result.returncode != 0, result.stdout[-2000:]
    assert "no-such-chromium is missing" in result.stdout and "apt-get install chromium" in result.stdout
    assert " passed" not in result.stdout.splitlines()[-1]


def test_a_skip_asked_for_by_name_says_so_loudly() -> None:
    result = run_browser_test(CELLANG_SKIP_BROWSER="1")
    assert result.returncode == 0 and "1 skipped" in result.stdout.splitlines()[-1]
    assert "BROWSER TESTS NOT RUN" in result.stdout
