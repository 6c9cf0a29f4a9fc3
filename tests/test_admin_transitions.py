"""Retry, cancel and run again as the admin calls them: transitions on the TaskQuerySet, once."""

from __future__ import annotations

import pytest
from django.utils import timezone

from taskq import enqueue, options
from taskq.models import Status, Task
from taskq.testing import run_due
from tests.rows import finished, make
from tests.test_admin import CHANGELIST, act, change_url, login
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def test_retry_keeps_the_enqueue_time_and_adds_the_new_attempt_to_the_history() -> None:
    task = options(max_attempts=1).enqueue(tasks.fail, "first")
    [ran] = run_due()
    assert ran.status == Status.FAILED
    before = Task.objects.get(pk=task.pk)
    [first] = before.history
    assert (first["outcome"], first["error"]) == ("failed", "ValueError: first")

    done = Task.objects.filter(pk=task.pk).retry(by="ops")

    assert (done.queued, done.resigned, done.not_resigned) == (1, 0, [])
    queued = Task.objects.get(pk=task.pk)
    assert (queued.status, queued.attempts, queued.retried_by) == (Status.QUEUED, 0, "ops")
    assert queued.enqueued_at == before.enqueued_at
    assert queued.history == before.history
    [again] = run_due()
    assert again.status == Status.FAILED
    assert [e["outcome"] for e in Task.objects.get(pk=task.pk).history] == ["failed", "failed"]
    assert Task.objects.get(pk=task.pk).history[0] == first


def test_retry_leaves_tasks_that_are_not_failed_or_cancelled_alone() -> None:
    queued, done = make(), make(**finished(Status.SUCCEEDED, result=3))
    assert Task.objects.filter(pk__in=[queued.pk, done.pk]).retry(by="ops").queued == 0
    assert Task.objects.get(pk=done.pk).result == 3


def test_retried_by_is_cut_to_the_columns_length() -> None:
    failed = make(**finished(Status.FAILED))
    Task.objects.filter(pk=failed.pk).retry(by="x" * 300)
    assert Task.objects.get(pk=failed.pk).retried_by == "x" * 255


def test_cancel_says_what_became_of_each_task() -> None:
    queued = make()
    running = make(status=Status.RUNNING, started_at=timezone.now())
    stopping = make(status=Status.RUNNING, started_at=timezone.now(), cancel_requested=True)
    done = [make(**finished(Status.SUCCEEDED)), make(**finished(Status.FAILED))]

    result = Task.objects.all().cancel()

    assert (result.cancelled, result.stopping, result.already_stopping, result.finished) == (1, 1, 1, 2)
    assert Task.objects.get(pk=queued.pk).status == Status.CANCELLED
    assert Task.objects.get(pk=running.pk).cancel_requested
    assert Task.objects.get(pk=stopping.pk).status == Status.RUNNING
    assert {t.status for t in Task.objects.filter(pk__in=[d.pk for d in done])} == {
        Status.SUCCEEDED,
        Status.FAILED,
    }


def test_one_tasks_cancel_goes_through_the_same_transition() -> None:
    queued = enqueue(tasks.add, 1, 2)
    assert queued.cancel()
    assert (queued.status, Task.objects.get(pk=queued.pk).status) == (Status.CANCELLED, Status.CANCELLED)
    assert queued.finished_at is not None
    assert not queued.cancel()  # finished now

    running = make(status=Status.RUNNING, started_at=timezone.now())
    assert running.cancel()
    assert running.cancel_requested
    assert running.cancel()  # asked before, still running: still on its way to cancelled
    assert Task.objects.get(pk=running.pk).status == Status.RUNNING


def test_cancel_acts_on_the_ticked_rows_as_they_are_now_not_as_the_filter_matches_them() -> None:
    started, ended, waiting = make(), make(), make()
    client = login("view_task", "change_task")
    assert client.get(CHANGELIST, {"status__exact": "queued"}).status_code == 200
    # Between the page load and the click, one task starts and another runs to the end.
    Task.objects.filter(pk=started.pk).update(status=Status.RUNNING, started_at=timezone.now())
    Task.objects.filter(pk=ended.pk).update(**finished(Status.SUCCEEDED))

    response = client.post(
        f"{CHANGELIST}?status__exact=queued",
        {"action": "cancel", "_selected_action": [started.pk, ended.pk, waiting.pk]},
        follow=True,
    )

    html = response.content.decode()
    assert "Cancelled 1 queued task." in html
    assert "Asked 1 running task to stop" in html
    assert "1 task had finished already and was left as it was." in html
    assert "Only queued or running tasks" not in html
    assert Task.objects.get(pk=waiting.pk).status == Status.CANCELLED
    assert Task.objects.get(pk=started.pk).cancel_requested
    assert Task.objects.get(pk=ended.pk).status == Status.SUCCEEDED


def test_run_again_over_its_limit_queues_nothing_and_says_so() -> None:
    done = [make(**finished(Status.SUCCEEDED)) for _ in range(3)]
    result = Task.objects.filter(pk__in=[t.pk for t in done]).run_again(by="ops", limit=2)
    assert (result.over_limit, result.queued) == (True, 0)
    assert Task.objects.count() == 3


def test_the_task_page_lists_every_attempt_including_those_before_a_retry() -> None:
    task = options(max_attempts=1).enqueue(tasks.fail, "<first>")
    run_due()
    client = login(superuser=True)
    act(client, "retry", task)
    run_due()

    html = client.get(change_url(task)).content.decode()

    assert "Attempts so far" in html
    assert html.count('<li class="taskq-attempt taskq-outcome-failed">') == 2
    assert html.count('<p class="taskq-attempt-error">ValueError: &lt;first&gt;</p>') == 2
    assert "<first>" not in html


def test_retry_leaves_a_task_whose_unique_key_a_live_task_holds() -> None:
    old = options(unique_key="sync-1", max_attempts=1).enqueue(tasks.fail, "x")
    run_due()
    live = options(unique_key="sync-1").enqueue(tasks.add, 1, 2)
    assert live.created  # the failed task let go of the key
    assert live.pk != old.pk
    other = options(unique_key="sync-2").enqueue(tasks.add, 3, 4)
    Task.objects.filter(pk=other.pk).update(status=Status.FAILED)

    done = Task.objects.filter(pk__in=[old.pk, other.pk]).retry(by="ops")

    assert (done.queued, done.key_held) == (1, [old.pk])
    assert Task.objects.get(pk=old.pk).status == Status.FAILED
    assert Task.objects.get(pk=other.pk).status == Status.QUEUED
    assert Task.objects.get(pk=live.pk).status == Status.QUEUED
