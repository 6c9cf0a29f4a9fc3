"""Timeouts: the late thread is abandoned and replaced, its result dropped, its connections closed."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from taskq import enqueue, options
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from tests.helpers import other_sessions, wait_until
from tests.test_reliability import heartbeats, wait_for_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def session_is_gone(pid: int) -> bool:
    """True once no server session has id ``pid`` (always true on SQLite, which has none)."""
    if other_sessions() is None:
        return True
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        else:
            cursor.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = %s", [pid])
        return bool(cursor.fetchone()[0] == 0)


def threads_of(pool: Pool) -> int:
    """The pool's live, unabandoned thread count, as its latest heartbeat reported it."""
    heartbeats(pool, rounds=1)
    return Worker.objects.get(name=pool.name).threads


def test_a_timed_out_attempt_is_abandoned_and_retried_on_a_fresh_thread(make_pool: Any) -> None:
    pool = make_pool(workers=1)
    task = options(timeout=0.3, max_attempts=2).enqueue(tasks.attempt_blocks, "t")
    assert tasks.event("t:1:started").wait(10)
    # Only the first attempt has a timeout, so the second can be held for as long as the test needs.
    Task.objects.filter(pk=task.pk).update(timeout=None)

    # The pool's only thread is stuck, so the retry can only run on a replacement.
    assert tasks.event("t:2:started").wait(10)
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.RUNNING, 2)
    assert task.error == "TaskTimeout: ran longer than its timeout of 0.3s"
    assert pool.abandoned_threads == 1
    assert pool.running_tasks() == [task.pk]

    # The abandoned attempt returns while the retry still runs.
    tasks.event("t:1").set()
    wait_until(lambda: pool.abandoned_threads == 0)
    task.refresh_from_db()
    assert (task.status, task.attempts, task.result) == (Status.RUNNING, 2, None)
    assert pool.running_tasks() == [task.pk]
    # It closed the connection it opened after its timeout.
    assert [c.connection for c in tasks.SEEN["t:1:connection"]] == [None]
    wait_until(lambda: session_is_gone(tasks.SEEN["t:1"][0]))

    tasks.event("t:2").set()
    task = wait_for_status(task, Status.SUCCEEDED, Status.FAILED)
    assert (task.status, task.attempts, task.result) == (Status.SUCCEEDED, 2, 2)
    # The pool still has its one thread.
    assert wait_for_status(enqueue(tasks.add, 1, 1), Status.SUCCEEDED).result == 2


def test_a_timeout_on_the_last_attempt_fails_the_task_and_its_late_result_is_dropped(
    make_pool: Any,
) -> None:
    pool = make_pool(workers=1)
    task = options(timeout=0.2, max_attempts=1).enqueue(tasks.attempt_blocks, "last")
    task = wait_for_status(task, Status.FAILED)
    assert task.error == "TaskTimeout: ran longer than its timeout of 0.2s"
    assert task.finished_at is not None
    assert pool.abandoned_threads == 1
    # The replacement thread takes new work while the abandoned one still hangs.
    assert wait_for_status(enqueue(tasks.add, 2, 2), Status.SUCCEEDED).result == 4
    tasks.event("last:1").set()
    wait_until(lambda: pool.abandoned_threads == 0)
    task.refresh_from_db()
    assert (task.status, task.result, task.attempts) == (Status.FAILED, None, 1)
    assert [c.connection for c in tasks.SEEN["last:1:connection"]] == [None]
    wait_until(lambda: session_is_gone(tasks.SEEN["last:1"][0]))


def test_past_the_cap_hung_threads_are_not_replaced_until_they_return(
    settings: Any, make_pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TASKQ_MAX_ABANDONED_THREADS = 1
    settings.TASKQ_LEASE_SECONDS = 0.4  # heartbeats every 0.1 s report the thread count
    pool = make_pool(workers=1)
    hung = [options(timeout=0.2, max_attempts=1).enqueue(tasks.attempt_blocks, n) for n in ("a", "b")]
    for task in hung:
        wait_for_status(task, Status.FAILED)
    assert pool.abandoned_threads == 2
    wait_until(lambda: threads_of(pool) == 0)
    assert "event=capacity_lost" in caplog.text
    waiting = enqueue(tasks.add, 3, 3)
    heartbeats(pool)
    waiting.refresh_from_db()
    assert (waiting.status, pool.busy) == (Status.QUEUED, 0)

    # Once a hung thread returns, its slot is filled again, and no more than that.
    tasks.event("a:1").set()
    assert wait_for_status(waiting, Status.SUCCEEDED).result == 6
    tasks.event("b:1").set()
    wait_until(lambda: pool.abandoned_threads == 0)
    assert threads_of(pool) == 1
    live = [t for t in pool.runners.threads if t.is_alive()]
    assert len(live) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_abandoned_thread_that_ends_in_system_exit_does_not_cost_a_second_slot(
    settings: Any, make_pool: Any
) -> None:
    settings.TASKQ_LEASE_SECONDS = 0.4  # heartbeats every 0.1 s report the thread count
    pool = make_pool(workers=1)
    task = wait_for_status(
        options(timeout=0.2, max_attempts=1).enqueue(tasks.block_then_exit, "x"), Status.FAILED
    )
    assert task.error.startswith("TaskTimeout")
    tasks.event("x").set()
    wait_until(lambda: pool.abandoned_threads == 0)
    # Its slot was refilled when it timed out; its exit must neither empty nor refill it again.
    assert threads_of(pool) == 1
    assert len([t for t in pool.runners.threads if t.is_alive()]) == 1
    assert wait_for_status(enqueue(tasks.add, 1, 1), Status.SUCCEEDED).result == 2
