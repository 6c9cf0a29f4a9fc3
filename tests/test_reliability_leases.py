"""Leases: renewed in one UPDATE per round while the pool lives, recovered once it dies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskq import enqueue, options
from taskq.models import WORKER_LOST, Status, Task
from taskq.pool import Pool
from taskq.runners import Running
from tests.helpers import other_sessions, wait_until
from tests.test_reliability import WORKER, claim, heartbeats, wait_for_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def running_elsewhere(task: Task, attempts: int, lease_left: float, worker: str = "deadhost:9:dead") -> Task:
    """Make ``task`` look claimed by another pool, with ``lease_left`` seconds of lease."""
    now = timezone.now()
    Task.objects.filter(pk=task.pk).update(
        status=Status.RUNNING,
        worker=worker,
        attempts=attempts,
        started_at=now,
        lease_expires_at=now + dt.timedelta(seconds=lease_left),
    )
    task.refresh_from_db()
    return task


def test_renewing_many_leases_is_one_update(django_assert_num_queries: Any) -> None:
    mine = [claim(enqueue(tasks.add, i, i), lease=5) for i in range(3)]
    theirs = running_elsewhere(enqueue(tasks.add, 0, 0), attempts=1, lease_left=5, worker="other:2:x")
    with django_assert_num_queries(1):
        renewed = Task.objects.renew_leases(WORKER, [t.pk for t in mine] + [theirs.pk], 600)
    assert renewed == 3
    for task in mine:
        old = task.lease_expires_at
        task.refresh_from_db()
        assert old is not None
        assert task.lease_expires_at is not None
        assert task.lease_expires_at > old + dt.timedelta(seconds=500)
    before = theirs.lease_expires_at
    theirs.refresh_from_db()
    assert theirs.lease_expires_at == before  # another pool's lease is not ours to renew
    assert Task.objects.renew_leases(WORKER, [], 600) == 0


def test_a_housekeeping_round_renews_all_running_leases_in_one_update() -> None:
    pool = Pool(workers=1)  # never started: its round runs here, in the test's thread
    for i in range(3):
        enqueue(tasks.add, i, i)
    claimed = Task.objects.claim(pool.name, 3, 5)
    for task in claimed:
        pool.runners.running[task.pk] = Running(task, thread=None, deadline=None)  # type: ignore[arg-type]
    with CaptureQueriesContext(connection) as captured:
        pool._housekeep()
    updates = [q["sql"].replace("`", '"') for q in captured if q["sql"].startswith("UPDATE")]
    renewals = [sql for sql in updates if 'SET "lease_expires_at" = ' in sql]
    assert len(renewals) == 1
    assert Task.objects.filter(lease_expires_at__gt=timezone.now() + dt.timedelta(seconds=30)).count() == 3


def test_an_expired_lease_is_requeued_and_the_attempt_counted() -> None:
    task = running_elsewhere(options(max_attempts=3).enqueue(tasks.add, 1, 1), attempts=1, lease_left=-1)
    live = running_elsewhere(enqueue(tasks.add, 2, 2), attempts=1, lease_left=60)
    assert Task.objects.recover_expired() == 1
    task.refresh_from_db()
    assert (task.status, task.attempts, task.error) == (Status.QUEUED, 1, WORKER_LOST)
    assert task.lease_expires_at is None
    assert task.run_after <= timezone.now()
    live.refresh_from_db()
    assert (live.status, live.error) == (Status.RUNNING, "")
    # The next claim is the second attempt.
    assert claim(task).attempts == 2


def test_an_expired_lease_on_the_last_attempt_fails_the_task() -> None:
    task = running_elsewhere(options(max_attempts=2).enqueue(tasks.add, 1, 1), attempts=2, lease_left=-1)
    assert Task.objects.recover_expired() == 1
    task.refresh_from_db()
    assert (task.status, task.attempts, task.error) == (Status.FAILED, 2, WORKER_LOST)
    assert task.finished_at is not None
    assert task.error.startswith("WorkerLost:")


def test_an_expired_lease_of_a_task_asked_to_stop_ends_cancelled() -> None:
    task = running_elsewhere(options(max_attempts=3).enqueue(tasks.add, 1, 1), attempts=1, lease_left=-1)
    assert task.cancel()
    assert Task.objects.recover_expired() == 1
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert task.finished_at is not None


def test_a_live_pool_recovers_a_dead_pools_task_and_runs_it(make_pool: Any) -> None:
    task = running_elsewhere(options(max_attempts=3).enqueue(tasks.add, 2, 3), attempts=1, lease_left=-1)
    pool = make_pool(workers=1)
    task = wait_for_status(task, Status.SUCCEEDED)
    assert (task.attempts, task.result, task.worker) == (2, 5, pool.name)


def test_a_long_task_in_a_live_pool_is_never_run_twice(settings: Any, make_pool: Any) -> None:
    lease = 1.0
    settings.TASKQ_LEASE_SECONDS = lease  # a heartbeat every 0.25 s
    first = make_pool(workers=1)
    second = make_pool(workers=1)  # recovers expired leases too, and would gladly rerun the task
    task = enqueue(tasks.attempt_blocks, "long")
    tasks.event("long:1:started").wait(10)
    task.refresh_from_db()
    runner, started = task.worker, task.started_at
    assert started is not None

    def renewed_past(lengths: int) -> bool:
        task.refresh_from_db()
        assert task.lease_expires_at is not None
        return task.lease_expires_at > started + dt.timedelta(seconds=lengths * lease)

    # Three lease lengths later, with both pools keeping house all along:
    wait_until(lambda: renewed_past(3))
    heartbeats(second)
    task.refresh_from_db()
    assert (task.status, task.attempts, task.worker) == (Status.RUNNING, 1, runner)
    tasks.event("long:1").set()
    task = wait_for_status(task, Status.SUCCEEDED)
    assert (task.attempts, task.result, task.error) == (1, 1, "")
    assert "long:2:started" not in tasks.EVENTS
    # A runner frees its slot just after it writes the outcome, so wait for the counters.
    wait_until(lambda: first.busy == second.busy == 0)


def test_an_outcome_whose_session_was_cut_is_written_on_a_fresh_one_without_a_rerun(
    settings: Any, make_pool: Any
) -> None:
    if other_sessions() is None:
        pytest.skip("SQLite has no server session to kill")
    settings.TASKQ_LEASE_SECONDS = 1.0
    make_pool(workers=1)
    task = options(max_attempts=3).enqueue(tasks.hold_session, "cut")
    assert tasks.event("cut:started").wait(10)
    # The database drops the worker's session, as a server restart or a network cut would.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(%s)", [tasks.SEEN["cut"][0]])
        else:
            cursor.execute(f"KILL CONNECTION {int(tasks.SEEN['cut'][0])}")
    tasks.event("cut").set()
    # The outcome goes through on a new session, so the lease never lapses and it runs once.
    task = wait_for_status(task, Status.SUCCEEDED)
    assert (task.attempts, task.result, task.error) == (1, 1, "")
    assert len(tasks.SEEN["cut"]) == 1
