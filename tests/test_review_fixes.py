"""Failures that must not cost the queue: a stale writer, a failing extra, a raising receiver.

Each case came from reading the code for ways a promise could break; each test fails without its fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from taskq import enqueue, options
from taskq.models import MinuteRollup, Status, Task
from taskq.pool import Pool
from taskq.schedule import fire, newest_firings
from taskq.schedule_entries import entries
from taskq.signals import task_started
from tests.helpers import wait_until
from tests.test_reliability import wait_for_status
from tests.test_unmigrated import rename
from tests.testapp import tasks

POOL = "web-1:42:cafe0001"


@pytest.mark.django_db
def test_an_earlier_attempt_never_overwrites_a_later_one_of_the_same_pool_and_count() -> None:
    task = options(max_attempts=1).enqueue(tasks.add, 1, 2)
    [first] = Task.objects.claim(POOL, 1, 60)
    # The attempt is given up on (a timeout, say) and an admin retries it: the count starts
    # again, and the same pool claims it again as attempt 1.
    Task.objects.filter(pk=task.pk).update(status=Status.FAILED, finished_at=timezone.now())
    assert Task.objects.filter(pk=task.pk).retry(by="ops").queued == 1
    [second] = Task.objects.claim(POOL, 1, 60)
    assert (first.worker, first.attempts) == (second.worker, second.attempts)
    assert first.started_at != second.started_at

    assert not first.set_succeeded("stale")  # the abandoned thread returns late
    assert Task.objects.get(pk=task.pk).status == Status.RUNNING
    assert second.set_succeeded("fresh")
    assert Task.objects.get(pk=task.pk).result == "fresh"


@pytest.fixture
def rollup_table_missing(transactional_db: None) -> Iterator[None]:
    """The rollup's table is gone, as on a site deployed before its migration ran."""
    table = MinuteRollup._meta.db_table
    rename(table, f"{table}_hidden")
    try:
        yield
    finally:
        rename(f"{table}_hidden", table)


@pytest.mark.usefixtures("rollup_table_missing")
def test_a_failing_rollup_never_stops_a_pool_from_running_tasks(
    make_pool: Callable[..., Pool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskq")
    make_pool(workers=1)
    for n in range(3):
        task = enqueue(tasks.add, n, n)
        assert wait_for_status(task, Status.SUCCEEDED).result == 2 * n
    wait_until(lambda: "event=rollup_failed" in caplog.text)
    assert "event=dispatch_error" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_raises_costs_the_task_neither_its_run_nor_its_outcome(
    make_pool: Callable[..., Pool], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, task: Task, **kwargs: Any) -> None:
        raise RuntimeError("a receiver's own bug")

    task_started.connect(broken, dispatch_uid="test.broken")
    try:
        make_pool(workers=1)
        task = wait_for_status(enqueue(tasks.add, 20, 22), Status.SUCCEEDED, Status.FAILED)
    finally:
        task_started.disconnect(dispatch_uid="test.broken")
    assert (task.status, task.attempts, task.result) == (Status.SUCCEEDED, 1, 42)
    assert "event=signal_error" in caplog.text


@pytest.mark.django_db
@override_settings(TASKQ_SCHEDULE={"minutely": {"task": "tests.testapp.periodic.tick", "every": 60}})
def test_retention_keeps_each_schedules_newest_firing() -> None:
    [entry] = [e for e in entries() if e.name == "minutely"]
    long_ago = timezone.now().replace(second=0, microsecond=0) - timedelta(days=30)
    old, newest = (fire(entry, long_ago + timedelta(minutes=m), long_ago) for m in (0, 1))
    assert old is not None
    assert newest is not None
    Task.objects.filter(pk__in=[old.pk, newest.pk]).update(status=Status.SUCCEEDED, finished_at=long_ago)

    assert newest_firings() == [newest.pk]
    assert Task.objects.prune(timezone.now(), keep=newest_firings()) == 1
    assert list(Task.objects.values_list("pk", flat=True)) == [newest.pk]
    assert connection.vendor in {"sqlite", "postgresql", "mysql"}
