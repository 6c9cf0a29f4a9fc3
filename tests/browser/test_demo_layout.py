"""The demo's pages in headless Chromium on a laptop (1400 px) and a phone (400 px).

Each test checks what a person sees at both widths (no sideways scrolling, the status badge
on screen, the words for a retrying task, the attempt timeline, the schedule's re-checks) and
saves a screenshot of each page in its tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from pytest_django import Settings

from demo_site.linkcheck import jobs
from demo_site.linkcheck.tasks import check_link
from taskq import enqueue
from taskq.backends import RUN_PATH
from taskq.models import Task
from taskq.pool import Pool
from tests.browser.site import StubAPI, demo_app, demo_live
from tests.browser.test_demo_browser import all_css, by_css, wait_for
from tests.helpers import wait_until

__all__ = ["demo_app", "demo_live"]  # fixtures, imported so pytest finds them here

WIDTHS = [pytest.param(1400, id="laptop"), pytest.param(400, id="phone")]
# Set DEMO_DOCS_IMAGE to a path to keep the laptop view of a job's timeline (docs/img/).
DOCS_IMAGE = "DEMO_DOCS_IMAGE"
RETRY_WORDS = re.compile(r"Retrying: attempt 2 of 3 at \d\d:\d\d:\d\d UTC \((in \d+ (s|min)|due now)\)")


def viewport(driver: Any, width: int, height: int = 900) -> None:
    """Make the page's viewport ``width`` x ``height`` CSS pixels, as a phone's below 600 px."""
    # Emulated through DevTools: a headless window cannot be made narrower than 500 px.
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def show(driver: Any, url: str, width: int) -> None:
    """Open ``url`` in a viewport exactly ``width`` CSS pixels wide, once its script has polled."""
    viewport(driver, width)
    driver.get(url)
    assert driver.execute_script("return window.innerWidth;") == width
    # The first answer redraws the attempts, which would leave elements read before it stale.
    polled = "var r = document.querySelector('[data-poll]'); return !r || Number(r.dataset.polls) > 0;"
    wait_for(driver, lambda d: d.execute_script(polled))


def fits(driver: Any) -> None:
    """The page does not scroll sideways."""
    scroll, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")
    assert scroll <= inner, f"the page is {scroll} px wide in a {inner} px window"


def on_screen(driver: Any, element: Any) -> None:
    """``element`` is shown whole, within the window's width."""
    assert element.is_displayed()
    left, right = driver.execute_script(
        "var r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", element
    )
    width = driver.execute_script("return window.innerWidth;")
    assert 0 <= left < right <= width, f"{element.text!r} spans {left}..{right} of {width} px"


def screenshot(driver: Any, path: Path) -> Path:
    """Save the whole page, as tall as it is, to ``path``."""
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight];"
    )
    viewport(driver, width, min(max(height, 600), 4000))
    driver.save_screenshot(str(path))
    viewport(driver, width)
    return path


def make_job(url: str, **fields: Any) -> Task:
    job = enqueue(check_link, url)
    Task.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def retried_once(started: Any) -> list[dict[str, Any]]:
    return [
        {
            "attempt": 1,
            "worker": "web-1:2577:1937be0d",
            "started_at": started.isoformat(),
            "finished_at": (started + timedelta(seconds=1.3)).isoformat(),
            "outcome": "retried",
            "error": "ApiUnavailable: the API answered HTTP 503: busy",
            "exception": "demo_site.linkcheck.api.ApiUnavailable",
            "traceback": "",
        }
    ]


def every_state() -> dict[str, Task]:
    """One job in each state a visitor can meet, as the pool leaves them."""
    now = timezone.now()
    earlier = now - timedelta(seconds=20)
    done = {"started_at": earlier, "finished_at": now, "worker": "web-1:2577:1937be0d"}
    return {
        "queued": make_job("https://queued.example/a/rather/long/path/that/has/to/wrap/somewhere"),
        "running": make_job("https://running.example/", status="running", attempts=1, started_at=earlier),
        "retrying": make_job(
            "https://retrying.example/",
            status="queued",
            attempts=1,
            run_after=now + timedelta(seconds=90),
            error="ApiUnavailable: the API answered HTTP 503: busy",
            history=retried_once(earlier),
        ),
        "succeeded": make_job(
            "https://ok.example/",
            status="succeeded",
            attempts=1,
            result={"http_status": 200, "response_ms": 120},
            **done,
        ),
        "broken": make_job(
            "https://ok.example/missing",
            status="succeeded",
            attempts=2,
            result={"http_status": 404, "response_ms": 95},
            **done,
        ),
        "failed": make_job(
            "https://down.example/",
            status="failed",
            attempts=3,
            error="ApiUnavailable: the API answered HTTP 503: simulated outage (failure rate 100%)",
            **done,
        ),
        "cancelled": make_job("https://cancelled.example/", status="cancelled", finished_at=now),
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_the_home_page_fits_the_screen_with_a_job_in_every_state(
    browser: Any, demo_live: str, tmp_path: Path, width: int
) -> None:
    made = every_state()
    show(browser, demo_live + "/", width)
    fits(browser)
    labels = {
        "queued": "Queued",
        "running": "Running",
        "retrying": "Retrying",
        "succeeded": "Succeeded",
        "broken": "Succeeded",
        "failed": "Failed",
        "cancelled": "Cancelled",
    }
    for name, job in made.items():
        row = by_css(browser, f'tr[data-job="{job.pk}"]')
        status = by_css(row, "[data-field=status_label]")
        assert status.text == labels[name]
        on_screen(browser, status)
        on_screen(browser, by_css(row, "[data-field=link_label]"))
        on_screen(browser, by_css(row, "[data-field=attempts]"))
    broken = by_css(browser, f'tr[data-job="{made["broken"].pk}"] [data-field=link_label]')
    assert broken.text == "Broken"
    retrying = by_css(browser, f'tr[data-job="{made["retrying"].pk}"] [data-field=summary]')
    assert retrying.text.startswith("Retrying: attempt 2 of 3 at ")
    screenshot(browser, tmp_path / f"home-{width}.png")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_retrying_job_says_when_its_next_attempt_runs(
    browser: Any, demo_live: str, tmp_path: Path, width: int
) -> None:
    now = timezone.now()
    job = make_job(
        "https://retrying.example/",
        status="queued",
        attempts=1,
        run_after=now + timedelta(seconds=90),
        enqueued_at=now - timedelta(seconds=30),
        worker="web-1:2577:1937be0d",
        started_at=now - timedelta(seconds=5),
        error="ApiUnavailable: the API answered HTTP 503: busy",
        history=retried_once(now - timedelta(seconds=5)),
    )
    show(browser, f"{demo_live}/jobs/{job.pk}/", width)
    fits(browser)
    status = by_css(browser, "#status")
    assert (status.get_attribute("data-status"), status.text) == ("retrying", "Retrying")
    on_screen(browser, status)
    wait_for(browser, lambda d: RETRY_WORDS.fullmatch(by_css(d, "#retrying").text))
    steps = all_css(browser, "#timeline > li")
    assert [step.get_attribute("data-outcome") for step in steps] == ["retried", "waiting"]
    assert "web-1, pid 2577" in steps[0].text
    assert re.search(r"\(\d+ s ago\)", by_css(browser, "#attempts dl").text)
    assert by_css(browser, "#progress").text == ""  # no bar: only a running check reports progress
    screenshot(browser, tmp_path / f"retrying-{width}.png")


@pytest.fixture
def flaky_api(demo_app: Settings) -> Any:
    """A stub API that the test turns from an outage to an answer, and retries a few seconds apart."""
    stub = StubAPI()
    stub.status, stub.body = 503, json.dumps({"error": "busy"}).encode()
    demo_app.THIRD_PARTY_API_URL = stub.url
    # Long enough to see the retry coming, short enough for a test.
    demo_app.TASKQ_RETRY_BACKOFF_BASE = demo_app.TASKQ_RETRY_BACKOFF_MAX = 4.0
    yield stub
    stub.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_job_page_follows_a_retry_live_and_shows_the_attempts_as_a_timeline(
    browser: Any,
    demo_live: str,
    flaky_api: StubAPI,
    make_pool: Callable[..., Pool],
    tmp_path: Path,
    width: int,
) -> None:
    job = enqueue(check_link, "https://example.com/")
    show(browser, f"{demo_live}/jobs/{job.pk}/", width)
    make_pool(workers=1)

    # The first attempt meets the outage: the page says a retry is coming, and when.
    wait_for(browser, lambda d: by_css(d, "#status").text == "Retrying")
    assert RETRY_WORDS.fullmatch(by_css(browser, "#retrying").text)
    fits(browser)
    screenshot(browser, tmp_path / f"live-retrying-{width}.png")

    flaky_api.status = 200
    flaky_api.body = json.dumps(
        {"url": "https://example.com/", "http_status": 200, "response_ms": 84}
    ).encode()
    wait_for(browser, lambda d: by_css(d, "#status").text == "Succeeded")
    wait_for(browser, lambda d: len(all_css(d, "#timeline > li")) == 2)
    steps = all_css(browser, "#timeline > li")
    assert [step.get_attribute("data-outcome") for step in steps] == ["retried", "succeeded"]
    assert "the API answered HTTP 503: busy" in steps[0].text
    assert re.search(r"started \d\d:\d\d:\d\d UTC, ran (\d+\.\d s|\d+ ms)", steps[1].text)
    assert by_css(browser, "#link-verdict").text == "OK"
    assert not all_css(browser, "#retrying")
    fits(browser)
    on_screen(browser, by_css(browser, "#status"))
    shot = screenshot(browser, tmp_path / f"timeline-{width}.png")
    docs = os.environ.get(DOCS_IMAGE)
    if docs and width == 1400:
        shutil.copyfile(shot, docs)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_schedule_rechecks_recent_links_through_djangos_tasks_api_and_the_pages_say_so(
    browser: Any,
    demo_live: str,
    demo_app: Settings,
    make_pool: Callable[..., Pool],
    tmp_path: Path,
    width: int,
) -> None:
    visited = make_job(
        "https://example.com/missing",
        status="succeeded",
        attempts=1,
        result={"http_status": 404, "response_ms": 70},
        finished_at=timezone.now(),
    )
    demo_app.TASKQ_SCHEDULE = {"recheck-recent": {"task": jobs.SCHEDULED_PATH, "every": 1}}
    make_pool(workers=2)

    def rechecked() -> Task | None:
        return Task.objects.filter(path=RUN_PATH, status="succeeded").order_by("pk").first()

    recheck = wait_until(rechecked, timeout=30)
    assert recheck is not None
    assert jobs.url_of(recheck) == jobs.url_of(visited)

    show(browser, demo_live + "/", width)
    fits(browser)
    runs = by_css(browser, "#schedule-runs").text
    # A tick a second: the newest firing may still be running.
    assert re.match(r"Last run: \d\d:\d\d:\d\d UTC \(\d+ s ago\), \w+\. Next run: ", runs), runs
    row = by_css(browser, f'tr[data-job="{recheck.pk}"]')
    assert "re-check" in by_css(row, "td.link").text
    on_screen(browser, by_css(row, "[data-field=status_label]"))
    verdict = by_css(row, "[data-field=link_label]")
    assert verdict.text == "Broken"
    on_screen(browser, verdict)
    screenshot(browser, tmp_path / f"schedule-{width}.png")

    show(browser, f"{demo_live}/jobs/{recheck.pk}/", width)
    fits(browser)
    origin = by_css(browser, "#origin").text
    assert re.match(r"Re-checked by the schedule at \d\d:\d\d:\d\d UTC \(\d+ s ago\)", origin), origin
    assert "@task" in origin
    assert "TaskqBackend" in origin
    assert by_css(browser, "#link-verdict").text == "Broken"
    screenshot(browser, tmp_path / f"recheck-{width}.png")
