"""Immediate mode: enqueue() runs the task in the calling thread once the transaction commits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from taskq import enqueue, options
from taskq.immediate import IMMEDIATE
from taskq.models import Status, Task
from taskq.testing import run_due
from tests.testapp import tasks
from tests.testapp.models import Item


def enqueue_child(name: str) -> str:
    """A task that enqueues another, as tasks that fan out do."""
    enqueue(tasks.create_item, name)
    return "parent"


def duplicate_item(pk: int) -> None:
    """Write a row, then break the transaction with a primary key that is taken."""
    Item.objects.create(name="written before the error")
    Item.objects.create(pk=pk, name="duplicate")


@override_settings(TASKQ_IMMEDIATE=True)
class ImmediateInTestCase(TestCase):
    """Inside TestCase's transaction nothing commits, so the task runs on captured callbacks."""

    def assert_transaction_untouched(self, raw: Any) -> None:
        # The test's transaction is the one it began with: same session, still open, not doomed.
        assert connection.connection is raw
        assert connection.in_atomic_block
        assert not connection.closed_in_transaction
        assert not connection.needs_rollback

    def test_view_enqueues_and_the_task_runs_on_commit(self) -> None:
        marker = Item.objects.create(name="uncommitted, made by the test")
        raw = connection.connection
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            response = self.client.post(reverse("create-item-later"), {"name": "from the view"})
            task = Task.objects.get(pk=response.json()["task"])
            assert task.status == Status.QUEUED  # nothing has committed yet
        assert response.status_code == 202
        assert len(callbacks) == 1
        task.refresh_from_db()
        assert (task.status, task.attempts, task.worker) == (Status.SUCCEEDED, 1, IMMEDIATE)
        assert task.started_at is not None
        assert task.finished_at is not None
        assert Item.objects.get(name="from the view").pk == task.result
        assert Item.objects.filter(pk=marker.pk).exists()
        self.assert_transaction_untouched(raw)

    def test_without_a_commit_the_task_stays_queued_until_run_due(self) -> None:
        response = self.client.post(reverse("create-item-later"), {"name": "later"})
        task = Task.objects.get(pk=response.json()["task"])
        assert task.status == Status.QUEUED
        raw = connection.connection
        [ran] = run_due()
        assert ran.pk == task.pk
        assert ran.status == Status.SUCCEEDED
        assert Item.objects.filter(name="later").exists()
        self.assert_transaction_untouched(raw)

    def test_tasks_enqueued_by_a_task_run_too(self) -> None:
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            parent = enqueue(enqueue_child, "child")
        assert len(callbacks) == 2
        parent.refresh_from_db()
        assert parent.result == "parent"
        child = Task.objects.exclude(pk=parent.pk).get()
        assert child.status == Status.SUCCEEDED
        assert Item.objects.filter(name="child").exists()

    def test_a_task_that_breaks_the_transaction_fails_without_breaking_the_test(self) -> None:
        taken = Item.objects.create(name="taken")
        raw = connection.connection
        with self.captureOnCommitCallbacks(execute=True):
            task = enqueue(duplicate_item, taken.pk)
        task.refresh_from_db()
        # Each attempt was rolled back to its savepoint and recorded; with no backoff
        # in the test settings every retry was due at once, so all three ran.
        assert (task.status, task.attempts) == (Status.FAILED, 3)
        assert task.error.startswith("IntegrityError")
        assert "IntegrityError" in task.traceback
        assert list(Item.objects.values_list("name", flat=True)) == ["taken"]
        self.assert_transaction_untouched(raw)


@override_settings(TASKQ_IMMEDIATE=True)
class ImmediateInTransactionTestCase(TransactionTestCase):
    """With real commits the task has run by the time the view returns."""

    def test_view_enqueues_and_the_task_has_run_when_it_returns(self) -> None:
        response = self.client.post(reverse("create-item-later"), {"name": "committed"})
        task = Task.objects.get(pk=response.json()["task"])
        assert task.status == Status.SUCCEEDED
        assert Item.objects.get(name="committed").pk == task.result


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("taskq_immediate")
class TestImmediateWithCommits:
    def test_runs_when_the_atomic_block_commits_and_never_after_a_rollback(self) -> None:
        with transaction.atomic():
            task = enqueue(tasks.create_item, "kept")
            assert Task.objects.get(pk=task.pk).status == Status.QUEUED
        task.refresh_from_db()
        assert task.status == Status.SUCCEEDED
        with transaction.atomic():
            enqueue(tasks.create_item, "rolled back")
            transaction.set_rollback(True)
        assert list(Item.objects.values_list("name", flat=True)) == ["kept"]
        assert Task.objects.count() == 1

    def test_a_retry_that_is_already_due_runs_again_at_once(self) -> None:
        task = enqueue(tasks.retry_once, "due-retry")
        assert (task.status, task.attempts, task.result) == (Status.SUCCEEDED, 2, "second time lucky")
        assert tasks.SEEN["due-retry"] == [1, 2]

    def test_without_backoff_a_failing_task_uses_every_attempt(self) -> None:
        task = enqueue(tasks.fail)
        task.refresh_from_db()
        assert (task.status, task.attempts, task.error) == (Status.FAILED, 3, "ValueError: boom")

    def test_with_backoff_a_retry_waits_for_run_due(self, settings: Any) -> None:
        settings.TASKQ_RETRY_BACKOFF_BASE = 30
        settings.TASKQ_RETRY_BACKOFF_MAX = 30
        task = enqueue(tasks.fail)
        task.refresh_from_db()
        assert (task.status, task.attempts, task.error) == (Status.QUEUED, 1, "ValueError: boom")
        assert task.run_after > timezone.now()
        assert run_due() == []
        runs = run_due(now=timezone.now() + timedelta(hours=1))
        assert [(t.pk, t.attempts) for t in runs] == [(task.pk, 2), (task.pk, 3)]
        task.refresh_from_db()
        assert (task.status, task.attempts) == (Status.FAILED, 3)

    def test_a_delayed_task_waits_for_its_time(self) -> None:
        task = options(delay=60).enqueue(tasks.add, 1, 2)
        task.refresh_from_db()
        assert (task.status, task.attempts) == (Status.QUEUED, 0)
        [ran] = run_due(now=timezone.now() + timedelta(seconds=61))
        assert (ran.pk, ran.status, ran.result) == (task.pk, Status.SUCCEEDED, 3)

    def test_a_task_cancelled_before_commit_never_runs(self) -> None:
        with transaction.atomic():
            task = enqueue(tasks.create_item, "cancelled")
            assert task.cancel()
        task.refresh_from_db()
        assert (task.status, task.attempts) == (Status.CANCELLED, 0)
        assert not Item.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_without_immediate_mode_the_task_waits_for_a_pool() -> None:
    task = enqueue(tasks.create_item, "waits")
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.QUEUED, 0)
    assert not Item.objects.exists()
