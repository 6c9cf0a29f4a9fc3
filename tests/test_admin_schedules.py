"""The admin's read-only page of periodic tasks, and the links that lead to it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import Client, override_settings
from django.utils import formats, timezone

from taskq.models import Status, Task
from taskq.schedule import fire
from taskq.schedule_entries import parse
from tests.test_admin import CHANGELIST, change_url, login

pytestmark = pytest.mark.django_db

SCHEDULES = f"{CHANGELIST}schedules/"
TICK = "tests.testapp.periodic.tick"
SCHEDULE = {"job": {"task": TICK, "every": 60}, "nightly": {"task": TICK, "cron": "0 3 * * *"}}


@pytest.fixture(autouse=True)
def _empty_registry(empty_schedule_registry: None) -> None:
    """Every test here starts with no @periodic entries."""


def shown(moment: datetime | None) -> str:
    """A time as the schedules page prints it."""
    assert moment is not None
    return str(formats.date_format(timezone.localtime(moment), "Y-m-d H:i:s"))


def page(client: Client) -> str:
    response = client.get(SCHEDULES)
    assert response.status_code == 200
    return response.content.decode()


@override_settings(TASKQ_SCHEDULE=SCHEDULE)
def test_each_schedule_is_listed_with_its_next_and_last_run_and_the_last_outcome() -> None:
    job = parse("job", SCHEDULE["job"])
    now = timezone.now()
    tick, _ = job.ticks_between(now - timedelta(minutes=1), now)
    assert tick is not None
    fired = fire(job, tick, now)
    assert fired is not None
    Task.objects.filter(pk=fired.pk).update(status=Status.SUCCEEDED)

    before = timezone.now()
    html = page(login("view_task"))
    after = timezone.now()

    assert '<th scope="row">job</th>' in html
    assert '<th scope="row">nightly</th>' in html
    assert html.count(TICK) == 2
    assert "every 60s" in html
    assert "cron 0 3 * * *" in html
    assert shown(tick) in html  # the last run
    assert shown(job.next_after(before)) in html or shown(job.next_after(after)) in html
    assert shown(parse("nightly", SCHEDULE["nightly"]).next_after(after)) in html
    assert f'<a href="{change_url(fired)}">' in html
    assert '<span class="taskq-status taskq-status-succeeded">Succeeded</span>' in html
    assert "not yet" in html  # nightly has never fired
    assert "Overdue" not in html


@override_settings(TASKQ_SCHEDULE={"job": SCHEDULE["job"]})
def test_an_overdue_schedule_and_its_skipped_ticks_are_shown() -> None:
    job = parse("job", SCHEDULE["job"])
    now = timezone.now()
    newest, _ = job.ticks_between(now - timedelta(minutes=11), now - timedelta(minutes=10))
    assert newest is not None
    fire(job, newest - timedelta(minutes=4), now)
    fire(job, newest, now)  # three ticks skipped in between

    html = page(login("view_task"))

    assert "Overdue: the tick after it has not fired." in html
    assert "<td>3</td>" in html
    assert '<span class="taskq-status taskq-status-queued">Queued</span>' in html


@override_settings(TASKQ_SCHEDULE={"broken": {"task": "tests.testapp.periodic.nowhere", "every": 60}})
def test_an_entry_that_check_reports_is_left_out() -> None:
    html = page(login("view_task"))
    assert "broken" not in html
    assert "No periodic tasks" in html


@override_settings(TASKQ_SCHEDULE={})
def test_without_schedules_the_page_says_how_to_add_one() -> None:
    assert "add entries to TASKQ_SCHEDULE, or decorate a function with @taskq.periodic" in page(
        login(superuser=True)
    )


@override_settings(TASKQ_SCHEDULE=SCHEDULE)
def test_only_users_who_may_view_tasks_see_the_schedules() -> None:
    assert Client().get(SCHEDULES).status_code == 302  # to the login page
    assert login().get(SCHEDULES).status_code == 403
    assert login("view_worker").get(SCHEDULES).status_code == 403
    assert "nightly" in page(login("change_task"))


def test_the_task_list_and_the_app_index_link_to_the_schedules() -> None:
    link = f'<a href="{SCHEDULES}">Schedules</a>'
    client = login("view_task")
    changelist = client.get(CHANGELIST).content.decode()
    assert link in changelist
    assert "Task queue" in changelist  # the breadcrumb names the app, not "Tasks" twice
    assert link in client.get("/admin/taskq/").content.decode()
    assert link not in login("view_worker").get("/admin/taskq/").content.decode()
