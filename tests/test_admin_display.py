"""What the task and pool admin pages say about each task, read as a person reads them."""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from taskq import options
from taskq.admin_display import args_summary, pool_parts, relative
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from tests.helpers import wait_until, worker_row
from tests.rows import finished, make
from tests.test_admin import CHANGELIST, change_url, ids_on_page, login
from tests.test_reliability import wait_for_status
from tests.testapp import progress_tasks, tasks

pytestmark = pytest.mark.django_db

WORKERS = "/admin/taskq/worker/"


def text(html: str) -> str:
    """The page's text as a person reads it: tags gone, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def row_of(html: str, task: Task) -> str:
    """The changelist row of ``task``."""
    for row in re.findall(r"<tr>.*?</tr>", html, re.S):
        if f'name="_selected_action" value="{task.pk}"' in row:
            return str(row)
    raise AssertionError(f"task {task.pk} is not listed")


def attempt(number: int, outcome: str, start: datetime, seconds: float, **more: Any) -> dict[str, Any]:
    return {
        "attempt": number,
        "worker": "web-1:42:cafe",
        "started_at": start.isoformat(),
        "finished_at": (start + timedelta(seconds=seconds)).isoformat(),
        "outcome": outcome,
        "error": "",
        "exception": "",
        "traceback": "",
        **more,
    }


def test_a_task_between_attempts_reads_as_retrying_with_when_the_next_one_runs() -> None:
    due = timezone.now() + timedelta(seconds=30)
    task = make(
        tasks.retry_once,
        "k",
        attempts=1,
        max_attempts=3,
        run_after=due,
        error="ValueError: flaky",
        worker="w:1:aa",
    )
    client = login(superuser=True)
    expected = f"Retrying attempt 2 of 3 at {timezone.localtime(due):%H:%M:%S} (in "

    listed = text(row_of(client.get(CHANGELIST).content.decode(), task))
    page = text(client.get(change_url(task)).content.decode())

    for seen in (listed, page):
        assert expected in seen
        assert re.search(r"\(in (29|30) s\)", seen)
    assert "Queued" not in listed

    fresh = make()  # never attempted: plainly queued
    assert "Queued" in text(row_of(client.get(CHANGELIST).content.decode(), fresh))


def test_the_task_page_shows_each_attempt_with_its_own_times_and_a_folded_traceback() -> None:
    start = timezone.now() - timedelta(minutes=5)
    history = [
        attempt(
            1,
            "retried",
            start,
            1.5,
            error="HTTPError: <503>",
            exception="urllib.error.HTTPError",
            traceback="Traceback (most recent call last):\n  File 'a.py'\nHTTPError: <503>",
        ),
        attempt(2, "succeeded", start + timedelta(seconds=10), 2.0),
    ]
    task = make(**finished(Status.SUCCEEDED, attempts=2, error="HTTPError: <503>", history=history, result=1))

    html = login(superuser=True).get(change_url(task)).content.decode()
    page = text(html)

    first = timezone.localtime(start)
    assert f"Attempt 1 Failed, retried web-1:42 Started {first:%Y-%m-%d %H:%M:%S} UTC" in page
    assert "Ran 1.5 s" in page
    assert "Attempt 2 Succeeded" in page
    assert "Ran 2.0 s" in page
    assert '<p class="taskq-attempt-error">HTTPError: &lt;503&gt;</p>' in html
    assert '<details class="taskq-trace"><summary>Traceback</summary>' in html
    assert "<503>" not in html
    # The error left by the first attempt says whose it is.
    assert "An earlier attempt raised this; the last attempt succeeded." in page
    # Started, Waited and Ran are defined once, beside the times.
    assert "Waited runs from enqueue to that start" in page


def test_the_changelist_defines_its_times_and_shows_a_short_escaped_argument_summary() -> None:
    long = make(tasks.echo, "<script>" + "x" * 500)
    keyed = make(tasks.add, 1, 2)
    Task.objects.filter(pk=keyed.pk).update(kwargs={"retries": 5})

    html = login(superuser=True).get(CHANGELIST).content.decode()

    row = row_of(html, long)
    assert "<script>" not in html
    assert "&quot;&lt;script&gt;xxx" in row
    assert "x" * 200 not in row  # only the start of the arguments is read and shown
    assert "…" in row
    assert "1, 2, &quot;retries&quot;: 5" in row_of(html, keyed)
    assert "Waited runs from enqueue to that start" in text(html)


def test_the_changelist_names_the_function_with_its_module_on_hover_and_still_filters_by_it() -> None:
    echo = make(tasks.echo, 1)
    make(tasks.add, 1, 2)
    client = login(superuser=True)

    html = client.get(CHANGELIST).content.decode()

    assert '<span class="taskq-function" title="tests.testapp.tasks.echo">echo</span>' in row_of(html, echo)
    assert ids_on_page(client.get(CHANGELIST, {"path": "tests.testapp.tasks.echo"}).content.decode()) == [
        echo.pk
    ]


def test_times_carry_seconds_the_zone_and_how_long_ago(settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"
    at = timezone.now() - timedelta(seconds=42)
    task = make(enqueued_at=at, run_after=at)
    client = login(superuser=True)

    page = text(client.get(change_url(task)).content.decode())
    listed = text(row_of(client.get(CHANGELIST).content.decode(), task))

    local = at.astimezone(timezone.get_current_timezone())
    zone = local.tzname()
    assert zone in ("EST", "EDT")
    assert f"Enqueued: {local:%Y-%m-%d %H:%M:%S} {zone}" in page
    assert re.search(r"4[2-4] s ago", page)
    assert f"{local:%H:%M:%S}" in listed or f"{local:%b %d %H:%M:%S}" in listed


def test_cancel_requested_shows_nothing_until_asked_and_the_signature_is_folded_away() -> None:
    task = make(status=Status.RUNNING, attempts=1, started_at=timezone.now(), worker="w:1:aa")
    client = login(superuser=True)

    html = client.get(change_url(task)).content.decode()
    assert "icon-no" not in html  # no red mark for a flag that is off
    technical = html[html.index("Technical details") :]
    assert task.signature in technical
    assert task.signature not in html[: html.index("Technical details")]
    assert re.search(r"<details[^>]*>\s*<summary[^>]*>.*?Technical details", html, re.S)

    Task.objects.filter(pk=task.pk).update(cancel_requested=True)
    html = client.get(change_url(task)).content.decode()
    assert "Yes: it stops once it checks current_task().cancel_event" in html
    assert "Running (stopping)" in html


def test_the_pool_reads_as_host_pid_and_since_when_while_it_lives() -> None:
    started = timezone.now() - timedelta(minutes=3)
    Worker.objects.create(name="web-1:42:cafe", hostname="web-1", pid=42, threads=4, started_at=started)
    live = make(**finished(Status.SUCCEEDED))
    gone = make(**finished(Status.FAILED, worker="db-2:7:beef"))
    client = login(superuser=True)

    live_page = text(client.get(change_url(live)).content.decode())
    gone_page = text(client.get(change_url(gone)).content.decode())
    listed = client.get(CHANGELIST).content.decode()

    assert f"web-1 · pid 42 · running since {timezone.localtime(started):%Y-%m-%d %H:%M:%S} UTC" in live_page
    assert "3 min ago" in live_page
    assert "db-2 · pid 7 (this pool has stopped)" in gone_page
    assert '<span class="taskq-pool" title="db-2:7:beef">db-2:7</span>' in row_of(listed, gone)


def test_the_traceback_opens_at_its_last_line() -> None:
    lines = "\n".join(f"  File 'f{i}.py', line {i}" for i in range(200))
    task = make(
        **finished(Status.FAILED, error="KeyError: 'x'", traceback=f"Traceback\n{lines}\nKeyError: 'x'")
    )
    html = login(superuser=True).get(change_url(task)).content.decode()
    assert '<div class="taskq-tail"><pre class="taskq-pre">Traceback\n' in html


def running_with_progress(done: int, total: int | None, note: str) -> Task:
    now = timezone.now()
    progress = {"attempt": 1, "done": done, "total": total, "note": note, "at": now.isoformat()}
    return make(status=Status.RUNNING, attempts=1, started_at=now, worker="w:1:aa", progress=progress)


def test_running_tasks_show_a_progress_bar_and_note_in_the_list_and_on_their_page(
    django_assert_num_queries: Any,
) -> None:
    counted = running_with_progress(42, 100, "resizing <photos>")
    open_ended = running_with_progress(7, None, "")
    client = login(superuser=True)
    client.get(CHANGELIST)  # the session's first read

    with django_assert_num_queries(9):  # as many as without progress: it is a column of the row
        html = client.get(CHANGELIST).content.decode()

    row = row_of(html, counted)
    assert '<progress class="taskq-progress" max="100" value="42.0">' in row
    assert "42%" in text(row)
    assert "resizing &lt;photos&gt;" in row
    assert '<progress class="taskq-progress"></progress>' in row_of(html, open_ended)
    assert "7 done" in text(row_of(html, open_ended))
    page = client.get(change_url(counted)).content.decode()
    assert '<progress class="taskq-progress" max="100" value="42.0">' in page
    assert "resizing &lt;photos&gt;" in page


def test_every_changelist_row_is_one_line_of_cells() -> None:
    make(**finished(Status.SUCCEEDED))
    running_with_progress(1, 3, "a note that goes on for quite a while, longer than the column")
    make(tasks.retry_once, "k", attempts=1, max_attempts=3, run_after=timezone.now() + timedelta(seconds=5))
    html = login(superuser=True).get(CHANGELIST).content.decode()
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    for row in re.findall(r"<tr>.*?</tr>", body, re.S):
        assert not re.search(r"<(br|p|div)[ >]", row)


# The Workers page ------------------------------------------------------------------------


def pool_row(html: str, name: str) -> str:
    for row in re.findall(r"<tr>.*?</tr>", html, re.S):
        if name in row:
            return str(row)
    raise AssertionError(f"{name} is not listed")


def test_the_workers_page_shows_busy_runners_running_tasks_and_the_last_hour() -> None:
    worker_row("web-1:10:aa", threads=4)
    worker_row("web-2:11:bb", threads=2)
    now = timezone.now()
    running = [make(status=Status.RUNNING, started_at=now, worker="web-1:10:aa") for _ in range(3)]
    for _ in range(5):
        make(**finished(Status.SUCCEEDED, worker="web-1:10:aa"))
    failed = make(**finished(Status.FAILED, worker="web-1:10:aa"))
    make(**finished(Status.FAILED, worker="web-1:10:aa", finished_at=now - timedelta(hours=2)))
    make(**finished(Status.FAILED, worker="web-2:11:bb"))
    client = login(superuser=True)

    html = client.get(WORKERS).content.decode()

    first, second = pool_row(html, "web-1:10:aa"), pool_row(html, "web-2:11:bb")
    assert "3 busy, 1 free" in text(first)
    assert "0 busy, 2 free" in text(second)
    for task in running:
        assert f'href="{change_url(task)}"' in first
    assert "5 succeeded · 1 failed" in text(first)
    assert "0 succeeded · 1 failed" in text(second)
    failed_link = htmllib.unescape(re.findall(r'<a href="([^"]+)">1 failed</a>', first)[0])
    assert ids_on_page(client.get(failed_link).content.decode()) == [failed.pk]


def test_the_workers_page_costs_the_same_queries_for_any_number_of_pools(
    django_assert_num_queries: Any,
) -> None:
    client = login(superuser=True)
    worker_row("web-1:10:aa")
    client.get(WORKERS)
    # session, user, Django's two counts and the page's rows, the running tasks, the last hour's counts
    with django_assert_num_queries(7):
        client.get(WORKERS)
    for i in range(2, 8):
        worker_row(f"web-{i}:1{i}:aa")
        make(status=Status.RUNNING, started_at=timezone.now(), worker=f"web-{i}:1{i}:aa")
    with django_assert_num_queries(7):
        html = client.get(WORKERS).content.decode()
    assert "1 busy, 3 free" in text(pool_row(html, "web-7:17:aa"))


def test_a_stale_pool_is_marked_stale_on_the_workers_page(settings: Any) -> None:
    settings.TASKQ_LEASE_SECONDS = 60.0
    worker_row("web-1:10:aa", age=5)
    worker_row("web-2:11:bb", age=600)
    html = login(superuser=True).get(WORKERS).content.decode()
    assert "stale" not in pool_row(html, "web-1:10:aa")
    assert '<strong class="taskq-stale">stale: no heartbeat for over 30.0 s</strong>' in pool_row(
        html, "web-2:11:bb"
    )


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-12.2, "12 s ago"),
        (4.2, "in 4 s"),
        (0.2, "now"),
        (-185, "3 min ago"),
        (7300, "in 2 h"),
        (-90000, "1 d ago"),
    ],
)
def test_relative_times_are_whole_units(seconds: float, expected: str) -> None:
    now = timezone.now()
    assert relative(now + timedelta(seconds=seconds), now) == expected


def test_a_pool_name_of_another_shape_is_shown_whole() -> None:
    assert pool_parts("web-1:42:cafe") == ("web-1", "42")
    assert pool_parts("fe80::1:42:cafe") == ("fe80::1", "42")
    assert pool_parts("immediate") == ("immediate", "")


def test_the_pages_read_naive_times_when_use_tz_is_off(settings: Any) -> None:
    settings.USE_TZ = False
    start = datetime(2026, 1, 2, 3, 4, 5)
    entry = attempt(1, "failed", start, 2.0, error="ValueError: x")
    task = make(**finished(Status.FAILED, started_at=start, finished_at=start, history=[entry]))
    client = login(superuser=True)
    assert "Started 2026-01-02 03:04:05 (" in text(client.get(change_url(task)).content.decode())
    assert client.get(CHANGELIST).status_code == 200


@pytest.mark.parametrize(
    ("args_head", "kwargs_head", "whole"),
    [
        ("[1, 2]", "{}", "1, 2"),
        ("[]", '{"a": [1]}', '"a": [1]'),
        ("[[1, 2], [3, 4]]", None, "[1, 2], [3, 4]"),
        ("[]", "{}", None),
        ("[" + "[1], " * 19 + "[1],", "{}", "[1], " * 19 + "[1],…"),  # 100 characters: cut short
    ],
)
def test_the_argument_summary_keeps_inner_brackets_and_marks_a_cut(
    args_head: str, kwargs_head: str | None, whole: str | None
) -> None:
    summary = str(args_summary(args_head, kwargs_head))
    titles = [htmllib.unescape(title) for title in re.findall(r'title="([^"]*)"', summary)]
    assert (titles[0] if titles else None) == whole


@pytest.mark.django_db(transaction=True)
def test_a_real_pool_shows_its_running_task_with_progress_then_its_finished_count(
    make_pool: Callable[..., Pool],
) -> None:
    pool = make_pool(workers=2)
    task = options().enqueue(progress_tasks.halfway, "admin-progress")
    try:
        assert tasks.event("admin-progress:started").wait(10)
        wait_until(lambda: Worker.objects.filter(name=pool.name).exists(), timeout=10)
        client = login(superuser=True)

        listed = row_of(client.get(CHANGELIST).content.decode(), task)
        assert '<progress class="taskq-progress" max="100" value="50.0">' in listed
        assert "halfway" in listed
        assert f'title="{pool.name}"' in listed
        pools = pool_row(client.get(WORKERS).content.decode(), pool.name)
        assert "1 busy, 1 free" in text(pools)
        assert f'href="{change_url(task)}"' in pools
    finally:
        tasks.event("admin-progress").set()
    assert wait_for_status(task, Status.SUCCEEDED, Status.FAILED).status == Status.SUCCEEDED

    pools = pool_row(client.get(WORKERS).content.decode(), pool.name)
    assert "0 busy, 2 free" in text(pools)
    assert "1 succeeded · 0 failed" in text(pools)
