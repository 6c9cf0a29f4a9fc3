"""Retention: the pool deletes finished tasks past their age, in bounded batches, once per interval."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from taskq import enqueue, options, pool
from taskq.models import Status, Task
from tests.helpers import wait_until
from tests.test_reliability import heartbeats
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


def finished_row(status: str = Status.SUCCEEDED, age: dt.timedelta = 2 * DAY) -> Task:
    """A task that finished with ``status`` ``age`` ago."""
    task = enqueue(tasks.add, 1, 1)
    Task.objects.filter(pk=task.pk).update(status=status, finished_at=timezone.now() - age)
    return task


def unfinished_rows() -> list[Task]:
    """A queued and a running task, both enqueued long ago and neither finished."""
    month_ago = timezone.now() - 30 * DAY
    queued = options(delay=3600).enqueue(tasks.add, 1, 1)
    running = enqueue(tasks.add, 1, 1)
    Task.objects.filter(pk=queued.pk).update(enqueued_at=month_ago)
    Task.objects.filter(pk=running.pk).update(
        status=Status.RUNNING,
        worker="elsewhere:1:alive",
        attempts=1,
        enqueued_at=month_ago,
        started_at=month_ago,
        lease_expires_at=timezone.now() + DAY,
    )
    return [queued, running]


def exists(task: Task) -> bool:
    return Task.objects.filter(pk=task.pk).exists()


@pytest.fixture
def retention(settings: Any) -> Any:
    settings.TASKQ_RETENTION = DAY
    # Far longer than the machine's uptime: the first round must prune all the same.
    settings.TASKQ_PRUNE_INTERVAL = 10**9
    settings.TASKQ_LEASE_SECONDS = 1.0  # heartbeats every 0.25 s
    return settings


def test_the_pool_deletes_only_finished_tasks_past_the_retention(retention: Any, make_pool: Any) -> None:
    old = [finished_row(s) for s in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)]
    kept = [finished_row(age=dt.timedelta(hours=23)), *unfinished_rows()]
    worker = make_pool(workers=1)
    wait_until(lambda: not any(exists(t) for t in old))
    heartbeats(worker)
    assert all(exists(t) for t in kept)


def test_the_pool_prunes_at_most_once_per_interval(retention: Any, make_pool: Any) -> None:
    first = finished_row()
    worker = make_pool(workers=1)
    wait_until(lambda: not exists(first))
    second = finished_row()
    heartbeats(worker, rounds=3)
    assert exists(second)
    retention.TASKQ_PRUNE_INTERVAL = 0.01
    wait_until(lambda: not exists(second))


def test_without_retention_nothing_is_deleted(retention: Any, make_pool: Any) -> None:
    retention.TASKQ_RETENTION = None
    ancient = finished_row(age=3650 * DAY)
    heartbeats(make_pool(workers=1), rounds=2)
    assert exists(ancient)


def test_a_round_deletes_in_small_batches_up_to_a_bound(
    retention: Any, make_pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "PRUNE_BATCH", 2)
    monkeypatch.setattr(pool, "PRUNE_BATCHES_PER_ROUND", 2)
    rows = [finished_row(age=(10 - i) * DAY) for i in range(5)]  # oldest first
    worker = make_pool(workers=1)
    wait_until(lambda: Task.objects.count() == 1)
    heartbeats(worker)
    # Two batches of two, oldest first; the newest waits for the next interval.
    assert list(Task.objects.values_list("pk", flat=True)) == [rows[-1].pk]


def test_prune_deletes_the_oldest_batch_in_two_queries(django_assert_num_queries: Any) -> None:
    rows = [finished_row(age=(10 - i) * DAY) for i in range(5)]
    recent = finished_row(age=dt.timedelta(hours=1))
    cutoff = timezone.now() - DAY
    with django_assert_num_queries(2):
        assert Task.objects.prune(cutoff, batch_size=2) == 2
    assert not exists(rows[0])
    assert not exists(rows[1])
    assert Task.objects.prune(cutoff, batch_size=10) == 3
    assert Task.objects.prune(cutoff, batch_size=10) == 0
    assert list(Task.objects.values_list("pk", flat=True)) == [recent.pk]
