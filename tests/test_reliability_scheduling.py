"""What runs when: run_after, delay and run_at, priorities, and queues."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from taskq import enqueue, options
from taskq.models import Status, Task
from tests.helpers import wait_until
from tests.test_reliability import WORKER, wait_for_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def claim_order() -> list[int]:
    """Primary keys in the order single-task claims take them."""
    order: list[int] = []
    while claimed := Task.objects.claim(WORKER, 1, 60):
        order.append(claimed[0].pk)
    return order


def test_due_tasks_are_claimed_in_run_after_order() -> None:
    now = timezone.now()
    late = options(run_at=now - dt.timedelta(seconds=1)).enqueue(tasks.add, 1, 1)
    early = options(run_at=now - dt.timedelta(seconds=3)).enqueue(tasks.add, 1, 1)
    middle = options(run_at=now - dt.timedelta(seconds=2)).enqueue(tasks.add, 1, 1)
    future = options(delay=60).enqueue(tasks.add, 1, 1)
    assert claim_order() == [early.pk, middle.pk, late.pk]
    future.refresh_from_db()
    assert (future.status, future.attempts) == (Status.QUEUED, 0)


def test_higher_priority_is_claimed_first_among_due_tasks() -> None:
    now = timezone.now()
    old_low = options(run_at=now - dt.timedelta(hours=1), priority=-5).enqueue(tasks.add, 1, 1)
    plain = enqueue(tasks.add, 1, 1)
    high = options(priority=10).enqueue(tasks.add, 1, 1)
    # The highest priority of all is not due yet, so it waits.
    options(delay=60, priority=100).enqueue(tasks.add, 1, 1)
    assert claim_order() == [high.pk, plain.pk, old_low.pk]


def test_equal_priority_and_run_after_fall_back_to_enqueue_order() -> None:
    when = timezone.now() - dt.timedelta(seconds=1)
    first = options(run_at=when).enqueue(tasks.add, 1, 1)
    second = options(run_at=when).enqueue(tasks.add, 1, 1)
    assert claim_order() == [first.pk, second.pk]


def test_a_pool_runs_in_priority_order(make_pool: Any) -> None:
    gate = enqueue(tasks.attempt_blocks, "gate")
    pool = make_pool(workers=1)
    tasks.event("gate:1:started").wait(10)
    for priority in (1, 5, -2, 3):
        options(priority=priority).enqueue(tasks.record, "order", priority)
    tasks.event("gate:1").set()
    wait_for_status(gate, Status.SUCCEEDED)
    for task in Task.objects.exclude(pk=gate.pk):
        wait_for_status(task, Status.SUCCEEDED)
    assert tasks.SEEN["order"] == [5, 3, 1, -2]
    wait_until(lambda: pool.busy == 0)  # a runner frees its slot just after saving


def test_delayed_tasks_do_not_hold_a_thread(make_pool: Any) -> None:
    pool = make_pool(workers=1)
    delayed = options(delay=3600).enqueue(tasks.add, 1, 1)
    now = wait_for_status(enqueue(tasks.add, 2, 2), Status.SUCCEEDED)
    assert now.result == 4
    wait_until(lambda: pool.busy == 0)  # a runner frees its slot just after saving
    delayed.refresh_from_db()
    assert (delayed.status, delayed.attempts, delayed.worker) == (Status.QUEUED, 0, "")


def test_a_delayed_task_runs_once_due_and_not_before(make_pool: Any) -> None:
    make_pool(workers=1)
    task = options(delay=0.3).enqueue(tasks.add, 1, 2)
    task = wait_for_status(task, Status.SUCCEEDED)
    assert task.started_at is not None
    assert task.started_at >= task.run_after
    assert task.attempts == 1


def test_a_pool_limited_to_queues_leaves_the_others_alone(make_pool: Any) -> None:
    other = options(queue="b").enqueue(tasks.add, 1, 1)
    mine = options(queue="a").enqueue(tasks.add, 2, 2)
    pool = make_pool(workers=2, queues=["a"])
    wait_for_status(mine, Status.SUCCEEDED)
    other.refresh_from_db()
    # The claim that took "a" would have taken the older "b" task too, had the pool served it.
    assert (other.status, other.attempts) == (Status.QUEUED, 0)
    wait_until(lambda: pool.busy == 0)  # a runner frees its slot just after saving


def test_the_queues_setting_chooses_a_pools_queues(settings: Any, make_pool: Any) -> None:
    settings.TASKQ_QUEUES = ["b", "c"]
    skipped = enqueue(tasks.add, 1, 1)  # the default queue
    served = [options(queue=q).enqueue(tasks.add, 1, 1) for q in ("b", "c")]
    pool = make_pool(workers=2)
    assert pool.queues == ["b", "c"]
    for task in served:
        wait_for_status(task, Status.SUCCEEDED)
    skipped.refresh_from_db()
    assert (skipped.status, skipped.attempts) == (Status.QUEUED, 0)


def test_decorator_queue_routes_the_task(make_pool: Any) -> None:
    make_pool(workers=1, queues=["special"])
    task = wait_for_status(enqueue(tasks.decorated, 21), Status.SUCCEEDED)
    assert (task.queue, task.result) == ("special", 42)
