"""Progress from inside a task: seen while it runs, written at most once a second, only to its attempt."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from django.utils import timezone

from taskq import options
from taskq.context import TaskContext
from taskq.exceptions import InvalidTask
from taskq.immediate import claim as claim_here
from taskq.models import Status, Task
from taskq.progress import MAX_NOTE_CHARS, checked
from taskq.testing import run_due
from tests.test_reliability import wait_for_status
from tests.testapp import progress_tasks, tasks

# Pools ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_other_threads_while_the_task_runs(make_pool: Callable[..., Any]) -> None:
    make_pool(workers=2)
    task = options().enqueue(progress_tasks.halfway, "h")
    assert tasks.event("h:started").wait(10)

    task.refresh_from_db()
    assert task.status == Status.RUNNING
    shown = task.progress_for_display()
    assert shown is not None
    assert (shown["done"], shown["total"], shown["percent"], shown["note"]) == (5, 10, 50.0, "halfway")
    assert 0 <= shown["age"] < 30

    tasks.event("h").set()
    task = wait_for_status(task, Status.SUCCEEDED, Status.FAILED)
    assert task.status == Status.SUCCEEDED, task.error
    # The report made just before returning is on the row, whether or not a second had passed.
    shown = task.progress_for_display()
    assert shown is not None
    assert (shown["done"], shown["percent"], shown["note"]) == (10, 100.0, "done")


@pytest.mark.django_db(transaction=True)
def test_a_tight_loop_writes_at_most_once_a_second(make_pool: Callable[..., Any]) -> None:
    make_pool(workers=1)
    task = options().enqueue(progress_tasks.tight_loop, "t", 10_000, 2.5)
    task = wait_for_status(task, Status.SUCCEEDED, Status.FAILED, timeout=60)
    assert task.status == Status.SUCCEEDED, task.error

    writes, duration, calls = tasks.SEEN["t"]
    assert calls >= 10_000
    assert 2 <= len(writes) <= math.floor(duration) + 1, (writes, duration)
    assert set(writes) == {1}  # every write found its row
    shown = task.progress_for_display()
    assert shown is not None
    assert (shown["done"], shown["total"], shown["note"]) == (calls, 10_000, f"item {calls}")


@pytest.mark.django_db(transaction=True)
def test_the_last_progress_is_kept_with_a_failure(make_pool: Callable[..., Any]) -> None:
    make_pool(workers=1)
    task = options(max_attempts=1).enqueue(progress_tasks.halfway_then_fail, "f")
    assert tasks.event("f:started").wait(10)
    tasks.event("f").set()
    task = wait_for_status(task, Status.FAILED, Status.SUCCEEDED)
    assert task.error == "ValueError: failed at 3 of 4"
    shown = task.progress_for_display()
    assert shown is not None
    assert (shown["done"], shown["total"], shown["percent"], shown["note"]) == (3, 4, 75.0, "giving up")


@pytest.mark.django_db(transaction=True)
def test_a_timed_out_attempt_never_writes_over_the_attempt_that_replaced_it(
    make_pool: Callable[..., Any],
) -> None:
    make_pool(workers=1)
    task = options(timeout=0.3, max_attempts=2).enqueue(progress_tasks.stale_attempt, "s")
    assert tasks.event("s:1:started").wait(10)
    # Only the first attempt times out, so the second can be held for as long as the test needs.
    Task.objects.filter(pk=task.pk).update(timeout=None)
    assert tasks.event("s:2:started").wait(10)

    tasks.event("s:1").set()
    assert tasks.event("s:1:reported").wait(10)
    assert tasks.SEEN["s:1"] == [0]  # it tried once, and its condition matched no row
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.RUNNING, 2)
    assert task.progress is not None
    assert (task.progress["attempt"], task.progress["note"]) == (2, "fresh")

    tasks.event("s:2").set()
    task = wait_for_status(task, Status.SUCCEEDED, Status.FAILED)
    assert (task.status, task.result) == (Status.SUCCEEDED, "fresh")
    shown = task.progress_for_display()
    assert shown is not None
    assert (shown["done"], shown["note"]) == (2, "fresh")


@pytest.mark.django_db(transaction=True)
def test_progress_waits_out_the_tasks_own_transaction(make_pool: Callable[..., Any]) -> None:
    make_pool(workers=1)
    task = wait_for_status(
        options().enqueue(progress_tasks.in_own_transaction, "x"), Status.SUCCEEDED, Status.FAILED
    )
    assert task.status == Status.SUCCEEDED, task.error
    inside, outside = tasks.SEEN["x"]
    # Written inside, the row would stay locked until the task's commit, stalling lease renewals.
    assert (inside, outside) == ([], [1])
    assert task.progress is not None
    assert task.progress["note"] == "outside"


@pytest.mark.django_db(transaction=True)
def test_an_async_task_writes_through_aprogress_and_keeps_the_rest_for_its_outcome(
    make_pool: Callable[..., Any],
) -> None:
    make_pool(workers=1)
    task = options().enqueue(progress_tasks.async_progress, "a")
    assert tasks.event("a:started").wait(10)
    task.refresh_from_db()
    shown = task.progress_for_display()
    # progress() on the event loop's thread kept its value; aprogress() wrote from the runner.
    assert shown is not None
    assert (shown["done"], shown["note"]) == (2, "through aprogress")

    tasks.event("a").set()
    task = wait_for_status(task, Status.SUCCEEDED, Status.FAILED)
    assert task.status == Status.SUCCEEDED, task.error
    shown = task.progress_for_display()
    assert shown is not None
    assert (shown["done"], shown["note"]) == (3, "from the loop at the end")


# The calling thread -----------------------------------------------------------


@pytest.mark.parametrize("transactional", [False, True], ids=["in-a-transaction", "autocommit"])
def test_run_due_writes_progress_the_task_can_read_back_on_its_thread(
    request: pytest.FixtureRequest, transactional: bool
) -> None:
    request.getfixturevalue("transactional_db" if transactional else "db")
    task = options().enqueue(progress_tasks.reads_own_progress, "r")
    assert len(run_due()) == 1
    writes, seen = tasks.SEEN["r"]
    assert writes == [1]
    assert seen is not None
    assert (seen["done"], seen["total"], seen["percent"], seen["note"]) == (3, 4, 75.0, "read back")
    task.refresh_from_db()
    assert task.status == Status.SUCCEEDED, task.error
    assert task.progress is not None
    assert task.progress["done"] == 3


def claimed(worker: str) -> Task:
    task = options().enqueue(tasks.add, 1, 2)
    assert claim_here(task, worker)
    return task


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_only_to_the_attempt_the_context_names() -> None:
    task = claimed("pool-a")
    later = task.started_at + dt.timedelta(seconds=1) if task.started_at else None
    others = [
        TaskContext(task.pk, task.attempts + 1, 1),
        TaskContext(task.pk, task.attempts, 1, worker="pool-b"),
        # The same pool and attempt number, claimed afresh after an admin retry.
        TaskContext(task.pk, task.attempts, 1, worker="pool-a", started_at=later),
    ]
    for other in others:
        other.progress(1, 2, "not mine")
    task.refresh_from_db()
    assert task.progress is None

    mine = TaskContext(task.pk, task.attempts, 1, worker="pool-a", started_at=task.started_at)
    mine.progress(1, 2, "mine")
    task.refresh_from_db()
    assert task.progress is not None
    assert task.progress["note"] == "mine"


@pytest.mark.django_db(transaction=True)
def test_reports_within_a_second_are_kept_in_memory_and_the_latest_wins() -> None:
    task = claimed("pool-a")
    context = TaskContext(task.pk, task.attempts, 1, worker="pool-a")
    for done in range(1, 101):
        context.progress(done, 100)
    task.refresh_from_db()
    assert task.progress is not None
    assert task.progress["done"] == 1  # the first report writes; the rest wait
    assert context.latest_progress is not None
    assert context.latest_progress["done"] == 100


# Checking the arguments -------------------------------------------------------

BAD = [
    pytest.param(-1, None, "", id="negative-done"),
    pytest.param(float("nan"), None, "", id="nan"),
    pytest.param(float("inf"), 10, "", id="infinite"),
    pytest.param(True, None, "", id="bool"),
    pytest.param("3", None, "", id="string-done"),
    pytest.param(2**60, None, "", id="beyond-2**53"),
    pytest.param(1, -5, "", id="negative-total"),
    pytest.param(1, float("nan"), "", id="nan-total"),
    pytest.param(1, None, 42, id="note-not-text"),
]


@pytest.mark.parametrize(("done", "total", "note"), BAD)
def test_nonsense_progress_is_invalid_task_saying_what_to_pass(done: Any, total: Any, note: Any) -> None:
    context = TaskContext(1, 1, 1)
    with pytest.raises(InvalidTask, match=r"progress .*: pass "):
        context.progress(done, total, note)
    assert context.latest_progress is None


def test_counts_of_any_real_number_type_are_accepted() -> None:
    value = checked(Decimal("2.5"), Fraction(10, 1), None, 3)
    assert (value["done"], value["total"], value["note"], value["attempt"]) == (2.5, 10, "", 3)
    assert type(value["total"]) is float


def test_done_may_run_past_total() -> None:
    value = checked(12, 10, "", 1)
    assert (value["done"], value["total"]) == (12, 10)
    shown = Task(attempts=1, progress=value, status=Status.RUNNING).progress_for_display()
    assert shown is not None
    assert shown["percent"] == 100.0


def test_the_note_becomes_one_storable_line_of_bounded_length() -> None:
    assert checked(1, None, "a\nb\x00c", 1)["note"] == "a b\\x00c"
    note = checked(1, None, "word " * 200, 1)["note"]
    assert len(note) == MAX_NOTE_CHARS
    assert note.endswith(" …")


# Reading it -------------------------------------------------------------------

NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)


def stored(**fields: Any) -> dict[str, Any]:
    return {"done": 1, "total": 3, "note": "n", "at": (NOW - dt.timedelta(seconds=4)).isoformat(), **fields}


@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [(1, 3, 33.3), (2, 3, 66.6), (0, 0, 100.0), (5, None, None), (999, 1000, 99.9), (0.5, 2, 25.0)],
)
def test_the_percentage_is_cut_to_a_tenth_and_reaches_100_only_when_done(
    done: float, total: float | None, percent: float | None
) -> None:
    task = Task(attempts=2, progress=stored(done=done, total=total, attempt=2), status=Status.RUNNING)
    assert task.progress_for_display(NOW) == {
        "done": done,
        "total": total,
        "percent": percent,
        "note": "n",
        "age": 4.0,
    }


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="never-reported"),
        pytest.param(stored(attempt=1), id="a-previous-attempt"),
        pytest.param(stored(), id="no-attempt"),
        pytest.param(stored(attempt=2, at="yesterday"), id="bad-time"),
        pytest.param(stored(attempt=2, at=None), id="no-time"),
        pytest.param(stored(attempt=2, done="1"), id="text-count"),
        pytest.param(["not", "a", "dict"], id="not-a-dict"),
    ],
)
def test_nothing_is_shown_for_a_previous_attempt_or_a_hand_edited_value(value: Any) -> None:
    assert Task(attempts=2, progress=value, status=Status.RUNNING).progress_for_display(NOW) is None


@pytest.mark.parametrize("status", [Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_a_running_or_finished_attempt_shows_its_progress(status: Status) -> None:
    assert Task(attempts=2, progress=stored(attempt=2), status=status).progress_for_display(NOW) is not None


def test_a_task_queued_for_another_attempt_shows_none_of_the_last_ones_progress() -> None:
    task = Task(attempts=2, progress=stored(attempt=2), status=Status.QUEUED)
    assert task.progress_for_display(NOW) is None


def test_a_value_from_the_future_shows_an_age_of_zero() -> None:
    later = (NOW + dt.timedelta(seconds=3)).isoformat()
    task = Task(attempts=1, progress=stored(attempt=1, at=later), status=Status.RUNNING)
    shown = task.progress_for_display(NOW)
    assert shown is not None
    assert shown["age"] == 0.0


def test_the_age_is_counted_from_now_by_default() -> None:
    task = Task(attempts=1, progress=stored(attempt=1, at=timezone.now().isoformat()), status=Status.RUNNING)
    shown = task.progress_for_display()
    assert shown is not None
    assert 0 <= shown["age"] < 60
