"""Retries: backoff, Retry and GiveUp, and what each failed attempt leaves on the row.

Also holds the small helpers the other test_reliability_* modules share.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from taskq import Retry, enqueue, options
from taskq.attempt import backoff, run_task
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

# A pool name in the format Pool uses, for rows a test claims by hand.
WORKER = "testhost:1:0000abcd"


def claim(expected: Task, lease: float = 60.0) -> Task:
    """Claim the one due task, as a pool would, and check it is ``expected``."""
    claimed = Task.objects.claim(WORKER, 1, lease)
    assert [t.pk for t in claimed] == [expected.pk]
    return claimed[0]


def wait_for_status(task: Task, *statuses: str, timeout: float = 20.0) -> Task:
    """Poll the row until its status is one of ``statuses``; return it refreshed."""

    def reached() -> bool:
        task.refresh_from_db()
        return task.status in statuses

    wait_until(reached, timeout=timeout)
    return task


def heartbeats(pool: Pool, rounds: int = 2) -> None:
    """Wait until ``pool`` has completed ``rounds`` more housekeeping rounds."""
    seen: list[dt.datetime] = []

    def beat() -> bool:
        row = Worker.objects.filter(name=pool.name).first()
        if row is not None and (not seen or row.last_heartbeat > seen[-1]):
            seen.append(row.last_heartbeat)
        return len(seen) > rounds

    wait_until(beat)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 2), (1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (40, 60), (10_000, 60)],
)
def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter(
    settings: Any, attempt: int, ceiling: float
) -> None:
    settings.TASKQ_RETRY_BACKOFF_BASE = 2
    settings.TASKQ_RETRY_BACKOFF_MAX = 60
    delays = {backoff(attempt) for _ in range(200)}
    # Jitter keeps each delay between half the ceiling and the ceiling, and spreads them.
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(delays) > 100


def test_zero_base_retries_at_once(settings: Any) -> None:
    settings.TASKQ_RETRY_BACKOFF_BASE = 0
    assert backoff(7) == 0.0


def test_failed_attempt_is_queued_again_after_its_backoff(settings: Any) -> None:
    settings.TASKQ_RETRY_BACKOFF_BASE = 10
    settings.TASKQ_RETRY_BACKOFF_MAX = 10
    task = options(max_attempts=2).enqueue(tasks.fail)
    before = timezone.now()
    run_task(claim(task))
    after = timezone.now()
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert before + dt.timedelta(seconds=5) <= task.run_after <= after + dt.timedelta(seconds=10)
    assert not Task.objects.due().exists()


def test_each_failed_attempt_keeps_its_error_and_only_the_last_fails_the_task() -> None:
    task = options(max_attempts=3).enqueue(tasks.fail_each_attempt)
    for attempt in (1, 2):
        run_task(claim(task))
        task.refresh_from_db()
        assert (task.status, task.attempts) == (Status.QUEUED, attempt)
        assert task.error == f"ValueError: attempt {attempt} failed"
        assert f"attempt {attempt} failed" in task.traceback
        assert "Traceback (most recent call last)" in task.traceback
        assert task.finished_at is None
        assert task.lease_expires_at is None
    run_task(claim(task))
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.FAILED, 3)
    assert task.error == "ValueError: attempt 3 failed"
    assert task.finished_at is not None


def test_retry_with_a_delay_sets_run_after_and_counts_the_attempt() -> None:
    task = options(max_attempts=3).enqueue(tasks.retry_in, 30)
    before = timezone.now()
    run_task(claim(task))
    after = timezone.now()
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.QUEUED, 1)
    assert task.error == "Retry: not yet"
    assert before + dt.timedelta(seconds=30) <= task.run_after <= after + dt.timedelta(seconds=30)


def test_retry_delay_accepts_a_timedelta() -> None:
    assert Retry(delay=dt.timedelta(minutes=2)).delay == 120
    assert Retry().delay is None


def test_retry_on_the_last_attempt_fails_the_task() -> None:
    task = options(max_attempts=1).enqueue(tasks.retry_in, 0)
    run_task(claim(task))
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.FAILED, 1)
    assert task.error == "Retry: not yet"


@pytest.mark.parametrize(
    ("fn", "error"),
    [
        (tasks.give_up, "GiveUp: no point trying again"),
        (tasks.not_json, "ResultNotStorable: "),
    ],
)
def test_non_retryable_errors_fail_at_once_with_attempts_left(fn: Any, error: str) -> None:
    task = options(max_attempts=5).enqueue(fn)
    run_task(claim(task))
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.FAILED, 1)
    assert task.error.startswith(error)
    assert task.traceback


def test_a_pool_runs_retries_until_the_task_succeeds(make_pool: Any) -> None:
    make_pool(workers=1)
    task = wait_for_status(enqueue(tasks.retry_once, "r"), Status.SUCCEEDED, Status.FAILED)
    assert (task.status, task.attempts, task.result) == (Status.SUCCEEDED, 2, "second time lucky")
    assert task.error == "Retry: retry requested"  # the earlier attempt's, kept on purpose
    assert tasks.SEEN["r"] == [1, 2]


# The pool lets SystemExit end the thread it was raised in, which pytest reports as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_task_raising_system_exit_fails_and_the_pool_keeps_its_thread(make_pool: Any) -> None:
    pool = make_pool(workers=1)
    task = wait_for_status(options(max_attempts=3).enqueue(tasks.exit_thread, 3), Status.FAILED)
    assert (task.attempts, task.error) == (1, "SystemExit: 3")
    assert wait_for_status(enqueue(tasks.add, 1, 2), Status.SUCCEEDED).result == 3
    assert len([t for t in pool.runners.threads if t.is_alive()]) == 1
