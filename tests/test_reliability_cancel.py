"""Cancel: a queued task never runs; a running one sees its flag and ends cancelled."""

from __future__ import annotations

from typing import Any

import pytest

import taskq
from taskq import enqueue, options
from taskq.attempt import run_task
from taskq.models import Status
from tests.helpers import wait_until
from tests.test_reliability import claim, wait_for_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_heartbeat(settings: Any) -> None:
    # Cancel requests reach running tasks at the heartbeat: every 0.25 s with this lease.
    settings.TASKQ_LEASE_SECONDS = 1.0


def test_a_cancelled_queued_task_never_runs(make_pool: Any) -> None:
    enqueue(tasks.attempt_blocks, "gate")
    pool = make_pool(workers=1)
    assert tasks.event("gate:1:started").wait(10)
    doomed = enqueue(tasks.record, "ran", "doomed")
    after = enqueue(tasks.record, "ran", "after")
    assert doomed.cancel()
    tasks.event("gate:1").set()
    wait_for_status(after, Status.SUCCEEDED)
    doomed.refresh_from_db()
    assert (doomed.status, doomed.attempts, doomed.started_at) == (Status.CANCELLED, 0, None)
    assert tasks.SEEN["ran"] == ["after"]
    wait_until(lambda: pool.busy == 0)  # a runner frees its slot just after saving


@pytest.mark.usefixtures("fast_heartbeat")
def test_a_running_task_sees_the_request_and_ends_cancelled(make_pool: Any) -> None:
    make_pool(workers=1)
    task = enqueue(tasks.wait_for_cancel, "c")
    assert tasks.event("c:started").wait(10)
    task.refresh_from_db()
    assert task.cancel()
    task = wait_for_status(task, Status.CANCELLED, Status.SUCCEEDED)
    assert (task.status, task.result, task.attempts) == (Status.CANCELLED, "stopped", 1)
    assert task.finished_at is not None
    assert not task.cancel()  # already finished


@pytest.mark.usefixtures("fast_heartbeat")
def test_a_cancelled_task_that_fails_is_not_retried(make_pool: Any) -> None:
    make_pool(workers=1)
    task = options(max_attempts=3).enqueue(tasks.fail_when_cancelled, "f")
    assert tasks.event("f:started").wait(10)
    assert task.cancel()
    task = wait_for_status(task, Status.CANCELLED, Status.FAILED, Status.SUCCEEDED)
    assert (task.status, task.attempts) == (Status.CANCELLED, 1)
    assert task.error == "RuntimeError: stopped half-way"
    assert task.finished_at is not None


def test_a_task_asked_to_stop_before_its_attempt_ends_cancelled_whatever_the_outcome() -> None:
    task = options(max_attempts=3).enqueue(tasks.fail)
    running = claim(task)
    assert task.cancel()  # a running row: only the flag is set
    run_task(running)  # no pool here, so the task itself never saw the flag
    task.refresh_from_db()
    assert (task.status, task.attempts, task.error) == (Status.CANCELLED, 1, "ValueError: boom")
    assert task.finished_at is not None


def test_outside_a_task_there_is_no_current_task() -> None:
    assert taskq.current_task() is None
