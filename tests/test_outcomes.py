"""An attempt's outcome is always recorded once, and a task never runs again because it could not be.

Each task counts its own calls in the Item table, so "ran once" is measured apart from taskq.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from taskq import options
from taskq.bounds import MAX_ERROR_CHARS, MAX_TRACEBACK_CHARS
from taskq.immediate import claim as claim_here
from taskq.models import Status, Task
from taskq.testing import run_due
from tests.helpers import other_sessions
from tests.test_reliability import wait_for_status
from tests.testapp import outcome_tasks
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)


def calls(key: str) -> int:
    return Item.objects.filter(name=key).count()


def run_in_pool(make_pool: Callable[..., Any], fn: Callable[..., Any], *args: Any, attempts: int = 3) -> Task:
    make_pool(workers=2)
    task = options(max_attempts=attempts).enqueue(fn, *args)
    return wait_for_status(task, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


def assert_not_storable(task: Task, key: str, prefix: str = "ResultNotStorable: ") -> None:
    assert task.status == Status.FAILED, task.error
    assert task.error.startswith(prefix), task.error
    assert task.attempts == 1  # a value that can never be stored is not retried
    assert calls(key) == 1
    assert [e["outcome"] for e in task.history] == ["failed"]
    assert task.history[0]["exception"] == "taskq.exceptions.ResultNotStorable"


REFUSED = [
    pytest.param(outcome_tasks.returns_megabytes, (20,), id="20MB-result"),
    pytest.param(outcome_tasks.returns_huge_int, (), id="int-over-4300-digits"),
]


@pytest.mark.parametrize(("fn", "args"), REFUSED)
def test_a_result_that_cannot_be_stored_fails_once_in_a_pool(
    make_pool: Callable[..., Any], fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    task = run_in_pool(make_pool, fn, "r", *args)
    assert_not_storable(task, "r")


@pytest.mark.parametrize(("fn", "args"), REFUSED)
def test_a_result_that_cannot_be_stored_fails_once_in_run_due(
    fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    task = options(max_attempts=3).enqueue(fn, "r", *args)
    assert len(run_due()) == 1
    task.refresh_from_db()
    assert_not_storable(task, "r")


@pytest.mark.parametrize("depth", [31, 40])
def test_a_deeply_nested_result_is_stored_or_refused_but_never_rerun(
    make_pool: Callable[..., Any], depth: int
) -> None:
    task = run_in_pool(make_pool, outcome_tasks.returns_nested, "d", depth)
    assert calls("d") == 1
    assert task.attempts == 1
    if task.status == Status.FAILED:  # MariaDB holds JSON 32 levels deep at most
        assert_not_storable(task, "d")
    else:
        assert task.status == Status.SUCCEEDED


def test_a_result_holding_nul_is_stored_or_refused_but_never_rerun(make_pool: Callable[..., Any]) -> None:
    task = run_in_pool(make_pool, outcome_tasks.returns_nul, "n")
    assert calls("n") == 1
    assert task.attempts == 1
    if task.status == Status.FAILED:  # PostgreSQL's jsonb refuses \u0000
        assert_not_storable(task, "n")
    else:
        assert (task.status, task.result) == (Status.SUCCEEDED, "a\x00b")


def test_a_huge_exception_message_is_bounded_and_the_task_retried_as_usual(
    make_pool: Callable[..., Any],
) -> None:
    task = run_in_pool(make_pool, outcome_tasks.raises_long_message, "m", 10, attempts=2)
    assert (task.status, task.attempts, calls("m")) == (Status.FAILED, 2, 2)
    assert task.error.startswith("ValueError: yyy")
    assert len(task.error) <= MAX_ERROR_CHARS
    assert "\n" not in task.error
    assert len(task.traceback) <= MAX_TRACEBACK_CHARS
    assert task.traceback.startswith("Traceback")
    assert "characters cut" in task.traceback
    assert [e["outcome"] for e in task.history] == ["retried", "failed"]


def test_an_exception_whose_str_raises_is_error_not_storable(
    make_pool: Callable[..., Any],
) -> None:
    task = run_in_pool(make_pool, outcome_tasks.raises_unprintable, "u", attempts=2)
    assert (task.status, task.attempts, calls("u")) == (Status.FAILED, 2, 2)
    assert task.error == "ErrorNotStorable: Unprintable whose message raised RuntimeError"
    assert task.history[0]["exception"] == "tests.testapp.outcome_tasks.Unprintable"


def test_nul_and_lone_surrogates_in_an_error_are_escaped(make_pool: Callable[..., Any]) -> None:
    task = run_in_pool(make_pool, outcome_tasks.raises_nul_message, "z", attempts=1)
    assert (task.status, task.attempts, calls("z")) == (Status.FAILED, 1, 1)
    assert task.error == "ValueError: bad\\x00byte and a lone \\ud800 surrogate"


def test_retry_with_an_infinite_delay_fails_with_a_clear_error(
    make_pool: Callable[..., Any],
) -> None:
    task = run_in_pool(make_pool, outcome_tasks.retries_forever, "i")
    assert (task.status, task.attempts, calls("i")) == (Status.FAILED, 1, 1)
    assert task.error.startswith("InvalidTask: Retry(delay=inf) is not a number of seconds")
    assert task.error.endswith("raise Retry with a finite delay, or GiveUp to stop.")


def test_a_task_that_leaves_a_transaction_open_still_gets_its_outcome_committed(
    make_pool: Callable[..., Any],
) -> None:
    task = run_in_pool(make_pool, outcome_tasks.leaves_a_transaction_open, "t")
    assert (task.status, task.attempts, task.result, calls("t")) == (Status.SUCCEEDED, 1, "done", 1)
    # The job's own uncommitted work is rolled back, as Django would at the end of a request.
    assert calls("t:uncommitted") == 0


def test_arguments_that_no_longer_fit_the_function_fail_at_once(make_pool: Callable[..., Any]) -> None:
    task = options(max_attempts=3).enqueue(outcome_tasks.fits_one, "f", 1)
    # The function changed after the task was stored: it now takes a different argument.
    Task.objects.filter(pk=task.pk).update(kwargs={"y": 2})
    from taskq import signing

    task.refresh_from_db()
    Task.objects.filter(pk=task.pk).update(
        signature=signing.sign(task.path, task.args, task.kwargs, task.uid)
    )
    make_pool(workers=1)
    task = wait_for_status(task, Status.FAILED)
    assert (task.attempts, calls("f")) == (1, 0)
    assert task.error.startswith(
        "InvalidTask: the stored arguments do not fit tests.testapp.outcome_tasks.fits_one(): got an "
        "unexpected keyword argument 'y'"
    )


def test_a_lost_connection_while_writing_the_outcome_is_retried_on_a_fresh_one(
    make_pool: Callable[..., Any],
) -> None:
    if other_sessions() is None:
        pytest.skip("SQLite has no server session to kill")
    task = run_in_pool(make_pool, outcome_tasks.cuts_its_own_connection, "c")
    assert (task.status, task.attempts, task.result, calls("c")) == (Status.SUCCEEDED, 1, "survived", 1)
    assert [e["outcome"] for e in task.history] == ["succeeded"]


def test_run_due_and_immediate_claims_carry_a_lease_that_recovery_honours() -> None:
    task = options(max_attempts=2).enqueue(outcome_tasks.fits_one, "l", 1)
    assert claim_here(task, "run_due")
    task.refresh_from_db()
    assert task.lease_expires_at is not None
    assert task.lease_expires_at > timezone.now()
    # Its thread died before it wrote an outcome: once the lease lapses, recovery requeues it.
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert Task.objects.recover_expired() == 1
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.QUEUED, 1)
    assert [e["outcome"] for e in task.history] == ["lost"]
    assert task.history[0]["exception"] == "taskq.exceptions.WorkerLost"


def test_each_attempt_is_kept_in_the_history(make_pool: Callable[..., Any]) -> None:
    task = run_in_pool(make_pool, outcome_tasks.raises_long_message, "h", 0, attempts=3)
    assert [e["attempt"] for e in task.history] == [1, 2, 3]
    assert [e["outcome"] for e in task.history] == ["retried", "retried", "failed"]
    for entry in task.history:
        assert entry["worker"] == task.worker
        assert entry["started_at"] <= entry["finished_at"]
        assert entry["error"] == "ValueError"
        assert entry["exception"] == "builtins.ValueError"
    assert connection.vendor in {"sqlite", "postgresql", "mysql"}
