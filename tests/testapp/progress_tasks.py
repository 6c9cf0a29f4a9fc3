"""Task functions that report their progress. Each counts the progress writes its own thread makes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

import taskq
from taskq.context import TaskContext
from taskq.models import Task
from tests.testapp.tasks import SEEN, event


def context() -> TaskContext:
    current = taskq.current_task()
    assert current is not None
    return current


@contextmanager
def progress_writes() -> Iterator[list[int]]:
    """Collect the row count of each UPDATE of the progress column this thread makes meanwhile."""
    counts: list[int] = []

    def watch(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: dict[str, Any]) -> Any:
        result = execute(sql, params, many, ctx)
        if sql.startswith("UPDATE") and "progress" in sql:
            counts.append(ctx["cursor"].rowcount)
        return result

    # This thread's own wrapper: the module's ``connection`` proxy would do as well, but
    # naming it says that only the task's thread is watched.
    with connections["default"].execute_wrapper(watch):
        yield counts


def tight_loop(key: str, calls: int, seconds: float) -> int:
    """Report progress ``calls`` times, and for at least ``seconds``; record writes and duration."""
    current = context()
    start = time.monotonic()
    done = 0
    with progress_writes() as writes:
        while done < calls or time.monotonic() - start < seconds:
            done += 1
            current.progress(done, calls, f"item {done}")
            time.sleep(0.0002)  # a step of work, so the loop spans several write intervals
    SEEN[key] = [writes, time.monotonic() - start, done]
    return done


def halfway(name: str, timeout: float = 30.0) -> str:
    """Report half done, wait for the test, then report all done just before returning."""
    current = context()
    current.progress(5, 10, "halfway")
    event(f"{name}:started").set()
    event(name).wait(timeout)
    current.progress(10, 10, "done")
    return "finished"


def halfway_then_fail(name: str, timeout: float = 30.0) -> None:
    """Report progress, wait for the test, report more, then fail."""
    current = context()
    current.progress(1, 4)
    event(f"{name}:started").set()
    event(name).wait(timeout)
    current.progress(3, 4, "giving up")
    raise ValueError("failed at 3 of 4")


def stale_attempt(name: str, timeout: float = 30.0) -> str:
    """Attempt 1 blocks, then reports once its row belongs to attempt 2; attempt 2 reports and blocks."""
    current = context()
    key = f"{name}:{current.attempt}"
    if current.attempt == 1:
        event(f"{key}:started").set()
        event(key).wait(timeout)
        with progress_writes() as writes:
            current.progress(99, 100, "stale")
        SEEN[key] = writes
        event(f"{key}:reported").set()
        return "late"
    current.progress(2, 100, "fresh")
    event(f"{key}:started").set()
    event(key).wait(timeout)
    return "fresh"


def in_own_transaction(key: str) -> None:
    """Report inside an atomic block of its own, then outside it; record the writes each time."""
    current = context()
    with transaction.atomic(), progress_writes() as inside:
        current.progress(1, 2, "inside")
    with progress_writes() as outside:
        current.progress(2, 2, "outside")
    SEEN[key] = [inside, outside]


def reads_own_progress(key: str) -> None:
    """Report, then read the row back on the same thread."""
    current = context()
    with progress_writes() as writes:
        current.progress(3, 4, "read back")
    SEEN[key] = [writes, Task.objects.get(pk=current.task_id).progress_for_display()]


async def async_progress(name: str, timeout: float = 30.0) -> None:
    """Report from the event loop's thread, then through aprogress(), then block for the test."""
    current = context()
    current.progress(1, 3, "from the loop")
    await current.aprogress(2, 3, "through aprogress")
    event(f"{name}:started").set()
    event(name).wait(timeout)  # blocks this task's own loop only
    current.progress(3, 3, "from the loop at the end")


def in_steps(name: str, count: int = 3, timeout: float = 30.0) -> int:
    """Report step 1, 2, … of ``count``, each until it is stored, then wait for the test to go on."""
    current = context()
    for step in range(1, count + 1):
        # progress() stores at most once a second: report for a little over one, so this
        # step's value is on the row before the test is told.
        stored_by = time.monotonic() + 1.1
        while True:
            current.progress(step, count, f"step {step} of {count}")
            if time.monotonic() >= stored_by:
                break
            time.sleep(0.05)  # a step of work
        event(f"{name}:{step}").wait(timeout)
    return count
