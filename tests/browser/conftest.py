"""A real headless Chromium for the browser tests, with a screenshot of every failure.

The tests skip, saying why, where Debian's chromium and chromium-driver packages are not
installed (.ci/packages.d/browser.sh installs them in CI). Screenshots and the page's HTML
go to artifacts/browser/ under the repository.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TASKQ_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TASKQ_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
# Headless, and quiet on the network: this machine reaches nothing but 127.0.0.1.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
]


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh Chromium profile driven through Debian's chromedriver."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not shutil.which(path):
            pytest.skip(f"{path} not found: apt-get install {package} (or run .ci/packages.d/browser.sh)")
    # The driver and the browser are given, so Selenium Manager must not look for them online.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Save what the browser showed when a test failed, so a broken page can be seen."""
    report = yield
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.failed and report.when == "call" and driver is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS / item.name
        try:
            driver.save_screenshot(str(stem.with_suffix(".png")))
            stem.with_suffix(".html").write_text(driver.page_source)
            report.sections.append(("browser", f"screenshot and page: {stem}.png, {stem}.html"))
        except Exception as exc:
            report.sections.append(("browser", f"no screenshot: {exc!r}"))
    return report
