"""The task and pool admin in real headless Chromium, on a laptop and on a phone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from taskq import enqueue
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from tests.browser.test_demo_browser import all_css, by_css
from tests.helpers import wait_until
from tests.rows import finished, make
from tests.test_reliability import wait_for_status
from tests.testapp import progress_tasks, tasks

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/taskq/task/"
WIDTHS = [1400, 400]


@pytest.fixture
def admin_browser(browser: Any, live_server: LiveServer) -> Any:
    """The browser, logged in to the live server's admin as a superuser."""
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "not-used")
    client = Client()
    client.force_login(user)
    browser.get(f"{live_server.url}/admin/login/")
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    browser.add_cookie({"name": cookie.key, "value": cookie.value, "path": "/"})
    return browser


def at_width(driver: Any, width: int) -> None:
    """Lay pages out for a viewport ``width`` CSS pixels wide; under 600 px, as a phone."""
    metrics = {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def overflow(driver: Any) -> int:
    """How many pixels the page is wider than the viewport."""
    return int(driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth;"))


def every_state() -> dict[str, Task]:
    """A task in each state a person meets, with a pool that ran them."""
    now = timezone.now()
    Worker.objects.create(
        name="web-1:42:cafe", hostname="web-1", pid=42, threads=4, started_at=now - timedelta(minutes=20)
    )
    start = now - timedelta(minutes=2)
    trace = "Traceback (most recent call last):\n" + "".join(
        f'  File "/srv/app/shop/sync.py", line {n}, in step_{n}\n    do_step({n})\n' for n in range(40)
    )
    history = [
        {
            "attempt": 1,
            "worker": "web-1:42:cafe",
            "started_at": start.isoformat(),
            "finished_at": (start + timedelta(seconds=1.2)).isoformat(),
            "outcome": "retried",
            "error": "HTTPError: HTTP Error 503: Service Unavailable",
            "exception": "urllib.error.HTTPError",
            "traceback": trace + "urllib.error.HTTPError: HTTP Error 503: Service Unavailable",
        },
        {
            "attempt": 2,
            "worker": "web-1:42:cafe",
            "started_at": (start + timedelta(seconds=6)).isoformat(),
            "finished_at": (start + timedelta(seconds=7.5)).isoformat(),
            "outcome": "failed",
            "error": "KeyError: 'sku-1042'",
            "exception": "builtins.KeyError",
            "traceback": trace + "KeyError: 'sku-1042'",
        },
    ]
    queued_at: dict[str, Any] = {"enqueued_at": start - timedelta(seconds=30)}
    progress = {"attempt": 1, "done": 420, "total": 1000, "note": "resizing photos", "at": now.isoformat()}
    return {
        "succeeded": make(tasks.add, 2, 3, **queued_at, **finished(Status.SUCCEEDED, result=5)),
        "failed": make(
            tasks.echo,
            "order-1042",
            **queued_at,
            **finished(
                Status.FAILED,
                attempts=2,
                max_attempts=2,
                started_at=start + timedelta(seconds=6),
                finished_at=start + timedelta(seconds=7.5),
                error="KeyError: 'sku-1042'",
                traceback=trace + "KeyError: 'sku-1042'",
                history=history,
            ),
        ),
        "retrying": make(
            tasks.retry_once,
            "customer-77",
            **queued_at,
            attempts=1,
            max_attempts=3,
            run_after=now + timedelta(seconds=40),
            worker="web-1:42:cafe",
            history=history[:1],
        ),
        "running": make(
            tasks.echo,
            {"album": 9, "size": "large"},
            **queued_at,
            status=Status.RUNNING,
            attempts=1,
            started_at=now - timedelta(seconds=12),
            worker="web-1:42:cafe",
            progress=progress,
        ),
        "cancelled": make(tasks.add, 7, 8, status=Status.CANCELLED, finished_at=now),
        "queued": make(tasks.echo, "a long argument " * 20),
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_the_task_list_fits_the_screen_with_even_rows(
    admin_browser: Any, live_server: LiveServer, tmp_path: Path, width: int
) -> None:
    every_state()
    at_width(admin_browser, width)
    admin_browser.get(live_server.url + CHANGELIST)
    admin_browser.save_screenshot(str(tmp_path / f"admin-task-list-{width}.png"))

    rows = all_css(admin_browser, "#result_list tbody tr")
    assert len(rows) == 6
    heights = {round(row.rect["height"]) for row in rows}
    assert max(heights) - min(heights) <= 1, heights
    assert by_css(admin_browser, "#result_list .taskq-status-retrying").text == "Retrying"
    assert by_css(admin_browser, "#result_list progress.taskq-progress").get_attribute("value") == "42"
    # The table scrolls inside its own box on a phone; the page itself never does.
    assert overflow(admin_browser) <= 0
    if width >= 1400:
        table = by_css(admin_browser, "#result_list")
        box = by_css(admin_browser, "#changelist-form .results")
        assert table.rect["width"] <= box.rect["width"] + 1, "the task list scrolls sideways on a laptop"
        last = all_css(admin_browser, "#result_list thead th")[-1]
        assert last.rect["x"] + last.rect["width"] <= width
        assert last.text == "POOL"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_task_page_shows_its_attempts_and_opens_the_traceback_at_its_end(
    admin_browser: Any, live_server: LiveServer, tmp_path: Path, width: int
) -> None:
    failed = every_state()["failed"]
    at_width(admin_browser, width)
    admin_browser.get(f"{live_server.url}{CHANGELIST}{failed.pk}/change/")
    admin_browser.save_screenshot(str(tmp_path / f"admin-task-page-{width}.png"))

    attempts = all_css(admin_browser, ".taskq-timeline > li")
    assert [a.get_attribute("class") for a in attempts] == [
        "taskq-attempt taskq-outcome-retried",
        "taskq-attempt taskq-outcome-failed",
    ]
    assert "Attempt 1" in attempts[0].text
    assert "Failed, retried" in attempts[0].text
    assert "KeyError: 'sku-1042'" in attempts[1].text
    # The last traceback opens at its end: its final line is inside the box as drawn.
    seen = admin_browser.execute_script(
        """
        const box = document.querySelector('.field-traceback_text .taskq-tail');
        const pre = box.querySelector('pre');
        const range = document.createRange();
        const text = pre.firstChild;
        range.setStart(text, text.length - 5);
        range.setEnd(text, text.length);
        const line = range.getBoundingClientRect(), frame = box.getBoundingClientRect();
        const inside = line.top >= frame.top && line.bottom <= frame.bottom + 1;
        return [box.scrollHeight > box.clientHeight, inside];
        """
    )
    assert seen == [True, True]
    # An attempt's traceback is folded until asked for, and then opens at its end too.
    by_css(admin_browser, ".taskq-timeline > li:last-child details summary").click()
    assert by_css(admin_browser, ".taskq-timeline > li:last-child details .taskq-tail").is_displayed()
    assert overflow(admin_browser) <= 0
    timeline = by_css(admin_browser, ".field-timeline")
    admin_browser.execute_script("arguments[0].scrollIntoView();", timeline)
    admin_browser.save_screenshot(str(tmp_path / f"admin-task-timeline-{width}.png"))
    section = timeline.find_element("xpath", "ancestor::fieldset")
    section.screenshot(str(tmp_path / f"admin-task-attempts-{width}.png"))


@pytest.mark.parametrize("width", WIDTHS)
def test_the_workers_page_shows_each_pool_at_work(
    admin_browser: Any, live_server: LiveServer, tmp_path: Path, width: int
) -> None:
    made = every_state()
    Worker.objects.create(
        name="web-2:77:beef",
        hostname="web-2",
        pid=77,
        threads=2,
        last_heartbeat=timezone.now() - timedelta(minutes=10),
    )
    at_width(admin_browser, width)
    admin_browser.get(f"{live_server.url}/admin/taskq/worker/")
    admin_browser.save_screenshot(str(tmp_path / f"admin-workers-{width}.png"))

    rows = {
        row.find_element("css selector", ".field-pool .taskq-pool").text: row
        for row in all_css(admin_browser, "#result_list tbody tr")
    }
    live, stale = rows["web-1:42:cafe"], rows["web-2:77:beef"]
    assert "1 busy, 3 free" in live.text
    assert "stale: no heartbeat" in stale.text
    link = live.find_element("css selector", ".field-running_now a")
    assert link.get_attribute("href").endswith(f"/taskq/task/{made['running'].pk}/change/")
    assert overflow(admin_browser) <= 0
    if width >= 1400:
        table = by_css(admin_browser, "#result_list")
        assert table.rect["width"] <= by_css(admin_browser, "#changelist-form .results").rect["width"] + 1


def test_a_running_tasks_progress_bar_advances(
    admin_browser: Any, live_server: LiveServer, make_pool: Callable[..., Pool], tmp_path: Path
) -> None:
    make_pool(workers=1)
    task = enqueue(progress_tasks.in_steps, "bar", 3)
    seen: list[float] = []
    try:

        def reported() -> Any:
            return (Task.objects.get(pk=task.pk).progress or {}).get("done")

        for step in (1, 2, 3):
            wait_until(lambda: reported() == step)  # noqa: B023 - called at once, inside this iteration
            admin_browser.get(f"{live_server.url}{CHANGELIST}{task.pk}/change/")
            bar = by_css(admin_browser, "progress.taskq-progress")
            seen.append(float(bar.get_attribute("value")))
            assert f"step {step} of 3" in admin_browser.page_source
            admin_browser.save_screenshot(str(tmp_path / f"admin-progress-{step}.png"))
            tasks.event(f"bar:{step}").set()
    finally:
        for step in (1, 2, 3):
            tasks.event(f"bar:{step}").set()
    assert seen == sorted(seen)
    assert seen[0] < seen[-1] == 100.0
    assert wait_for_status(task, Status.SUCCEEDED).result == 3
