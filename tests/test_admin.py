"""The task and worker admin, through Django's test client, as users with and without permissions."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db.models import Count, Max, Min
from django.test import Client
from django.utils import timezone

from taskq import signing
from taskq.admin import TaskAdmin
from taskq.changelist import CappedPaginator, ProbingQuerySet, distinct_values
from taskq.models import Status, Task, Worker
from taskq.signals import task_enqueued
from tests.rows import finished, make
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/taskq/task/"


def change_url(task: Task) -> str:
    return f"{CHANGELIST}{task.pk}/change/"


def login(*perms: str, superuser: bool = False) -> Client:
    """A client logged in as a staff user holding ``perms`` (codenames of taskq permissions)."""
    name = "root" if superuser else "staff-" + "-".join(perms)
    if superuser:
        user = User.objects.create_superuser(name)
    else:
        user = User.objects.create_user(name, is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="taskq", codename__in=perms)
        )
    client = Client()
    client.force_login(user)
    return client


def ids_on_page(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)]


def act(client: Client, action: str, *selected: Task, **extra: Any) -> str:
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [t.pk for t in selected], **extra}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


# The changelist ---------------------------------------------------------------------


def test_changelist_shows_the_columns_and_a_badge_with_words() -> None:
    failed = make(tasks.fail, "x", **finished(Status.FAILED, error="ValueError: x"))
    running = make(status=Status.RUNNING, attempts=1, started_at=timezone.now(), worker="w:1:ab")
    Task.objects.filter(pk=running.pk).update(cancel_requested=True)

    html = login(superuser=True).get(CHANGELIST).content.decode()

    assert ids_on_page(html) == [running.pk, failed.pk]  # newest first
    assert '<span class="taskq-status taskq-status-failed">Failed</span>' in html
    assert '<span class="taskq-status taskq-status-running">Running (stopping)</span>' in html
    assert "tests.testapp.tasks.fail" in html
    assert "1/3" in html  # attempts of max
    assert "2.0 s" in html  # its run time
    assert "so far" in html  # the running task's run time
    assert "web-1:42:cafe" in html
    assert "taskq/admin.css" in html


def test_changelist_costs_the_same_few_queries_for_any_number_of_rows(
    django_assert_num_queries: Any,
) -> None:
    client = login(superuser=True)
    make()
    # session, user, the two filters' values, the capped count, the page, and the date
    # hierarchy's bounds (asked by Django, then by the probe) and its one probe query.
    with django_assert_num_queries(9):
        assert client.get(CHANGELIST).status_code == 200
    for i in range(30):
        make(queue=f"q{i % 3}", **finished(Status.SUCCEEDED))
    with django_assert_num_queries(9):
        assert client.get(CHANGELIST).status_code == 200
    with django_assert_num_queries(9):
        assert client.get(CHANGELIST, {"status__exact": "succeeded", "queue": "q1"}).status_code == 200


def test_filters_by_status_queue_and_function() -> None:
    client = login(superuser=True)
    queued = make(queue="mail")
    failed = make(tasks.fail, "x", **finished(Status.FAILED))
    done = make(tasks.echo, 1, queue="mail", **finished(Status.SUCCEEDED))

    html = client.get(CHANGELIST).content.decode()
    for value in ("?queue=default", "?queue=mail", "?path=tests.testapp.tasks.echo", "?status__exact=failed"):
        assert value in html.replace("&amp;", "&")

    assert ids_on_page(client.get(CHANGELIST, {"status__exact": "failed"}).content.decode()) == [failed.pk]
    assert ids_on_page(client.get(CHANGELIST, {"queue": "mail"}).content.decode()) == [done.pk, queued.pk]
    by_path = client.get(CHANGELIST, {"path": "tests.testapp.tasks.echo"}).content.decode()
    assert ids_on_page(by_path) == [done.pk]


def test_a_filter_lists_each_value_once_in_order_up_to_its_limit() -> None:
    for queue in ("mail", "alpha", "zeta", "alpha", "mail"):
        make(queue=queue)
    assert distinct_values(Task, "queue", 10) == ["alpha", "mail", "zeta"]
    assert distinct_values(Task, "queue", 2) == ["alpha", "mail"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("{add}", ["add"]),
        ("#{add}", ["add"]),
        ("99999999999999999999", []),  # beyond any id
        ("tasks.ech", ["echo"]),
        ("TASKS.ECHO", ["echo"]),
        ("disk full", ["failed"]),  # both words, anywhere in the error
        ('"disk full"', []),  # a quoted phrase is one word
        ("'no space'", ["failed"]),
        ("stale", []),  # the leftover error of a task that succeeded in the end
        ("nothing-like-this", []),
    ],
)
def test_search_by_id_path_and_error(term: str, expected: list[str]) -> None:
    made = {
        "add": make(tasks.add, 1, 2),
        "echo": make(tasks.echo, 1),
        "failed": make(tasks.fail, "x", **finished(Status.FAILED, error="OSError: no space, disk is full")),
        "retried": make(tasks.retry_once, "k", **finished(Status.SUCCEEDED, error="Retry: stale")),
    }
    response = login(superuser=True).get(CHANGELIST, {"q": term.format(add=made["add"].pk)})
    assert ids_on_page(response.content.decode()) == [made[name].pk for name in expected]


def test_date_hierarchy_lists_only_periods_that_have_tasks() -> None:
    client = login(superuser=True)
    at = timezone.make_aware(datetime(2025, 3, 10, 12))
    for when in (at, at + timedelta(days=2), at + timedelta(days=2, hours=1), at + timedelta(days=40)):
        make(enqueued_at=when)

    months = client.get(CHANGELIST).content.decode()  # one year: its months
    assert "enqueued_at__month=3" in months
    assert "enqueued_at__month=4" in months
    assert "enqueued_at__month=2" not in months
    assert "enqueued_at__month=5" not in months

    days = client.get(CHANGELIST, {"enqueued_at__year": 2025, "enqueued_at__month": 3}).content.decode()
    assert re.findall(r"enqueued_at__day=(\d+)", days) == ["10", "12"]

    one_day = {"enqueued_at__year": 2025, "enqueued_at__month": 3, "enqueued_at__day": 12}
    assert len(ids_on_page(client.get(CHANGELIST, one_day).content.decode())) == 2

    make(enqueued_at=at.replace(year=2023))  # two years: the years
    years = client.get(CHANGELIST).content.decode()
    assert "enqueued_at__year=2023" in years
    assert "enqueued_at__year=2025" in years
    assert "enqueued_at__year=2024" not in years


def test_a_long_list_is_counted_only_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CappedPaginator, "limit", 3)
    monkeypatch.setattr(TaskAdmin, "list_per_page", 2)
    client = login(superuser=True)
    for _ in range(5):
        make()

    html = client.get(CHANGELIST).content.decode()
    assert "More than 3 tasks" in html
    assert "Select every matching task (more than 3)" in html
    assert "results (" not in html  # no misleading count next to the search box

    small = client.get(CHANGELIST, {"q": "nothing-like-this"}).content.decode()
    assert "0 tasks" in small
    assert "More than" not in small


@pytest.mark.parametrize("order", ["ASC", "DESC"])
@pytest.mark.parametrize("kind", ["year", "month", "day"])
def test_probed_periods_are_djangos_distinct_dates(kind: str, order: str) -> None:
    at = timezone.make_aware(datetime(2024, 12, 31, 23, 30))
    for when in (at, at + timedelta(hours=1), at + timedelta(days=40), at + timedelta(days=400)):
        make(enqueued_at=when)
    probed = ProbingQuerySet(Task).datetimes("enqueued_at", kind, order)  # type: ignore[arg-type]
    assert list(probed) == list(Task.objects.datetimes("enqueued_at", kind, order))  # type: ignore[arg-type]


def test_the_date_bounds_are_djangos_min_and_max() -> None:
    # On SQLite the admin's MIN and MAX are read as two index probes; the answer must not change.
    bounds = {"first": Min("enqueued_at"), "last": Max("enqueued_at")}
    assert ProbingQuerySet(Task).aggregate(**bounds) == {"first": None, "last": None}
    at = timezone.make_aware(datetime(2025, 3, 1, 12))
    for when in (at + timedelta(days=9), at, at + timedelta(hours=5)):
        make(enqueued_at=when, **finished(Status.SUCCEEDED))
    make(enqueued_at=at + timedelta(days=20))
    succeeded, nothing = Task.objects.filter(status=Status.SUCCEEDED), Task.objects.filter(queue="none")
    for qs in (Task.objects.all(), succeeded, nothing):
        probed = ProbingQuerySet(Task).filter(pk__in=qs.values("pk"))
        assert probed.aggregate(**bounds) == qs.aggregate(**bounds)
    # Anything else is Django's own aggregate.
    assert ProbingQuerySet(Task).aggregate(n=Count("pk"), last=Max("enqueued_at"))["n"] == 4


def test_probed_periods_follow_the_current_time_zone() -> None:
    make(enqueued_at=timezone.make_aware(datetime(2025, 1, 1, 3)))  # still 2024 in New York
    with timezone.override("America/New_York"):
        days = ProbingQuerySet(Task).datetimes("enqueued_at", "day")
        assert [(d.year, d.month, d.day, d.hour) for d in days] == [(2024, 12, 31, 0)]


def test_other_kinds_and_long_spans_fall_back_to_djangos_query(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ProbingQuerySet(Task).datetimes("enqueued_at", "day") == []
    at = timezone.make_aware(datetime(2025, 6, 1, 8))
    for when in (at, at + timedelta(days=1, hours=2)):
        make(enqueued_at=when)
    hours = ProbingQuerySet(Task).datetimes("enqueued_at", "hour")
    assert list(hours) == list(Task.objects.datetimes("enqueued_at", "hour"))
    monkeypatch.setattr("taskq.changelist.MAX_PROBES", 1)
    days = ProbingQuerySet(Task).datetimes("enqueued_at", "day")
    assert list(days) == [at.replace(hour=0), at.replace(day=2, hour=0)]


def test_the_capped_paginator_counts_plain_lists_too() -> None:
    assert CappedPaginator([1, 2, 3], 2).count == 3


# The detail page --------------------------------------------------------------------


def test_detail_page_is_read_only_with_pretty_json_and_the_traceback() -> None:
    task = make(
        tasks.echo,
        "<b>bold</b>",
        **finished(
            Status.FAILED,
            result={"z": 1, "a": [1, 2]},
            error="ValueError: <boom>",
            traceback='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: <boom>',
        ),
    )
    client = login(superuser=True)

    html = client.get(change_url(task)).content.decode()

    assert (
        f'<pre class="taskq-pre">{json.dumps(["&lt;b&gt;bold&lt;/b&gt;"], indent=2)}</pre>'
        in html.replace("&quot;", '"')
    )
    assert (
        '<pre class="taskq-pre">{\n  &quot;a&quot;: [\n    1,\n    2\n  ],\n  &quot;z&quot;: 1\n}</pre>'
        in html
    )
    assert (
        '<pre class="taskq-pre">Traceback (most recent call last):\n  File &quot;x.py&quot;, line 1\n' in html
    )
    assert "<b>bold</b>" not in html
    assert "<boom>" not in html
    assert task.signature in html
    assert 'name="path"' not in html
    assert 'name="args"' not in html
    assert 'name="_save"' not in html

    # Nothing can be written through it, even by a superuser who posts anyway.
    response = client.post(change_url(task), {"path": "os.system", "args": '["rm -rf /"]'})
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.path == "tests.testapp.tasks.echo"
    assert signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature)


def test_no_one_adds_tasks_and_only_finished_ones_can_be_deleted() -> None:
    client = login(superuser=True)
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    running = make(status=Status.RUNNING, started_at=timezone.now())
    done = make(**finished(Status.SUCCEEDED))
    assert client.get(f"{CHANGELIST}{running.pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{done.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Task.objects.filter(pk=done.pk).exists()
    assert "delete_selected" not in client.get(CHANGELIST).content.decode()


# Permissions and actions ------------------------------------------------------------


def test_staff_without_task_permissions_see_nothing() -> None:
    client = login()
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(make())).status_code == 403


@pytest.mark.parametrize(
    ("perms", "offered"),
    [
        (["view_task"], set()),
        (["view_task", "change_task"], {"cancel"}),
        (["view_task", "retry_task"], {"retry", "run_again"}),
        (["change_task", "retry_task"], {"cancel", "retry", "run_again"}),
    ],
)
def test_each_action_is_offered_only_with_its_permission(perms: list[str], offered: set[str]) -> None:
    make()
    html = login(*perms).get(CHANGELIST).content.decode()
    assert set(re.findall(r'<option value="(\w+)">', html)) == offered


def test_retry_queues_failed_and_cancelled_tasks_with_a_fresh_budget_and_says_who() -> None:
    failed = make(
        tasks.fail, "x", **finished(Status.FAILED, attempts=3, error="ValueError: x", traceback="tb")
    )
    cancelled = make(status=Status.CANCELLED, finished_at=timezone.now())
    done = make(**finished(Status.SUCCEEDED, result=3))

    html = act(login("view_task", "retry_task"), "retry", failed, cancelled, done)

    assert '<li class="success">Queued 2 tasks again' in html
    for task in (failed, cancelled):
        task.refresh_from_db()
        assert (task.status, task.attempts, task.retried_by) == (
            Status.QUEUED,
            0,
            "staff-view_task-retry_task",
        )
        assert (task.error, task.traceback, task.worker, task.finished_at) == ("", "", "", None)
        assert task.run_after <= timezone.now()
    done.refresh_from_db()
    assert (done.status, done.result, done.retried_by) == (Status.SUCCEEDED, 3, "")

    assert "Only failed or cancelled tasks can be retried" in act(login(superuser=True), "retry", done)


def test_actions_without_their_permission_change_nothing() -> None:
    failed = make(**finished(Status.FAILED))
    queued = make()
    client = login("view_task", "change_task")
    assert "No action selected" in act(client, "retry", failed)
    assert "No action selected" in act(client, "run_again", failed)
    assert "No action selected" in act(login("view_task", "retry_task"), "cancel", queued)
    assert Task.objects.get(pk=failed.pk).status == Status.FAILED
    assert Task.objects.get(pk=queued.pk).status == Status.QUEUED
    assert Task.objects.count() == 2


def test_cancel_stops_queued_tasks_and_asks_running_ones_to_stop() -> None:
    queued = make()
    running = make(status=Status.RUNNING, started_at=timezone.now())
    done = make(**finished(Status.SUCCEEDED))

    html = act(login("view_task", "change_task"), "cancel", queued, running, done)

    assert "Cancelled 1 queued task." in html
    assert "Asked 1 running task to stop" in html
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    assert queued.finished_at is not None
    running.refresh_from_db()
    assert (running.status, running.cancel_requested) == (Status.RUNNING, True)
    assert Task.objects.get(pk=done.pk).status == Status.SUCCEEDED
    assert "Only queued or running tasks can be cancelled" in act(login(superuser=True), "cancel", done)


def test_cancel_across_every_page_of_a_filtered_list() -> None:
    mail = [make(queue="mail") for _ in range(3)]
    other = make()
    response = login("view_task", "change_task").post(
        f"{CHANGELIST}?queue=mail",
        {"action": "cancel", "_selected_action": [mail[0].pk], "select_across": "1", "index": "0"},
    )
    assert response.status_code == 302
    assert {t.status for t in Task.objects.filter(pk__in=[t.pk for t in mail])} == {Status.CANCELLED}
    assert Task.objects.get(pk=other.pk).status == Status.QUEUED  # outside the filter


def test_run_again_queues_signed_copies_of_finished_tasks() -> None:
    received: list[Task] = []

    def record(task: Task, **kwargs: Any) -> None:
        received.append(task)

    original = make(tasks.echo, "hi", **finished(Status.SUCCEEDED, result={"ok": True}))
    queued = make()
    task_enqueued.connect(record)
    try:
        html = act(login("view_task", "retry_task"), "run_again", original, queued)
    finally:
        task_enqueued.disconnect(record)

    assert "Queued 1 new task copied" in html
    copy = Task.objects.exclude(pk__in=[original.pk, queued.pk]).get()
    assert (copy.path, copy.args, copy.kwargs) == (original.path, original.args, original.kwargs)
    assert copy.uid != original.uid
    assert signing.verify(copy.path, copy.args, copy.kwargs, copy.uid, copy.signature)
    assert (copy.status, copy.attempts, copy.result, copy.retried_by) == (
        Status.QUEUED,
        0,
        None,
        "staff-view_task-retry_task",
    )
    assert [t.pk for t in received] == [copy.pk]
    assert Task.objects.get(pk=original.pk).status == Status.SUCCEEDED
    assert "Only finished tasks can be run again" in act(login(superuser=True), "run_again", queued)


def test_run_again_refuses_a_selection_over_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("taskq.admin.RUN_AGAIN_LIMIT", 1)
    done = [make(**finished(Status.SUCCEEDED)) for _ in range(2)]
    assert "at most 1 tasks at a time" in act(login(superuser=True), "run_again", *done)
    assert Task.objects.count() == 2


def test_a_copy_of_a_forged_task_stays_refused() -> None:
    forged = make(**finished(Status.FAILED))
    Task.objects.filter(pk=forged.pk).update(args=[40, 2])  # written behind taskq's back
    act(login(superuser=True), "run_again", forged)
    copy = Task.objects.exclude(pk=forged.pk).get()
    assert not signing.verify(copy.path, copy.args, copy.kwargs, copy.uid, copy.signature)


# Workers ----------------------------------------------------------------------------


def test_worker_list_is_read_only_and_shows_who_is_alive() -> None:
    now = timezone.now()
    Worker.objects.create(name="web-1:10:aa", hostname="web-1", pid=10, threads=4, queues=None)
    Worker.objects.create(
        name="web-2:11:bb",
        hostname="web-2",
        pid=11,
        threads=2,
        queues=["mail", "reports"],
        last_heartbeat=now - timedelta(hours=1),
    )
    client = login(superuser=True)

    html = client.get("/admin/taskq/worker/").content.decode()

    assert "web-1:10:aa" in html
    assert "web-2:11:bb" in html
    assert "mail, reports" in html
    assert ">all<" in html
    assert html.count('alt="True"') == 1
    assert html.count('alt="False"') == 1
    assert client.get("/admin/taskq/worker/add/").status_code == 403
    worker = Worker.objects.get(pid=10)
    assert 'name="_save"' not in client.get(f"/admin/taskq/worker/{worker.pk}/change/").content.decode()
    assert client.get(f"/admin/taskq/worker/{worker.pk}/delete/").status_code == 403
