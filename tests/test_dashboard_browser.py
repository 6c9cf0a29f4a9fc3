"""The queue dashboard in real headless Chromium: every chart drawn, the numbers refreshed by the script."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from taskq.models import Status
from tests.browser.conftest import browser
from tests.rows import make
from tests.test_dashboard import ended
from tests.test_dashboard_view import DASHBOARD, busy_queue
from tests.testapp import tasks

__all__ = ["browser"]  # a fixture, imported so pytest finds it here

pytestmark = [pytest.mark.urls("tests.test_dashboard_view"), pytest.mark.usefixtures("transactional_db")]
WAIT = 30.0


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def log_in(driver: Any, base: str) -> None:
    password = secrets.token_urlsafe(16)
    get_user_model().objects.create_superuser("admin", "admin@example.com", password)
    driver.get(base + "/admin/login/?next=" + DASHBOARD)
    by_css(driver, "#id_username").send_keys("admin")
    by_css(driver, "#id_password").send_keys(password)
    by_css(driver, "#login-form [type=submit]").click()


def test_the_dashboard_draws_every_chart_and_refreshes_its_figures(
    browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    busy_queue()
    log_in(browser, live_server.url)
    WebDriverWait(browser, WAIT).until(lambda d: d.current_url.endswith(DASHBOARD))

    # Read in one script, so the page's own refresh cannot swap a chart out halfway.
    drawn = browser.execute_script(
        """
        const charts = [...document.querySelectorAll('svg.taskq-chart')];
        return {
          count: charts.length,
          bars: charts.slice(0, 2).map(c => ['succeeded', 'failed', 'retried'].map(
            k => c.querySelectorAll('rect.taskq-' + k).length)),
          width: charts.length ? charts[0].getBoundingClientRect().width : 0,
          pools: document.querySelector('#taskq-pools').textContent,
        };
        """
    )
    assert drawn["count"] == 6
    for bars in drawn["bars"]:
        assert all(n > 0 for n in bars), bars
    assert drawn["pools"].count("web-1:42") == 1
    # Drawn wide enough to read: the stylesheet and the viewBox both applied.
    assert drawn["width"] > 600
    browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight") + 120)
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    number = "return document.querySelector('.taskq-dash-number').textContent.trim();"
    due_before = browser.execute_script(number)
    for _ in range(3):
        make(tasks.add, run_after=timezone.now() - timedelta(seconds=30))
    ended(Status.SUCCEEDED, timezone.now())
    WebDriverWait(browser, WAIT, poll_frequency=0.2).until(lambda d: d.execute_script(number) != due_before)
    assert browser.execute_script(number) == str(int(due_before) + 3)
    assert browser.execute_script("return document.querySelectorAll('svg.taskq-chart').length;") == 6
    browser.save_screenshot(str(tmp_path / "dashboard-refreshed.png"))
