"""Helpers for testing code that enqueues: run tasks now, wait for a pool, run a pool that always stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.utils import timezone

from taskq.exceptions import TaskqError
from taskq.immediate import claim, run_claimed
from taskq.models import Status, Task
from taskq.pool import Pool
from taskq.signals import task_enqueued

__all__ = ["DrainTimeout", "PoolLeak", "ThreadWatch", "run_due", "running_pool", "wait_until_drained"]

# What Task.worker records for attempts that run_due() runs.
RUN_DUE = "run_due"
THREAD_PREFIX = "taskq-"


class DrainTimeout(TimeoutError, TaskqError):
    """Tasks were still queued or running when wait_until_drained() gave up."""


class PoolLeak(RuntimeError, TaskqError):
    """A pool's threads, or the database sessions they opened, outlived the pool."""


def run_due(
    *, queues: Sequence[str] | None = None, now: datetime | None = None, max_runs: int | None = None
) -> list[Task]:
    """Run every due queued task in this thread, in claim order, and return one Task per attempt run."""
    ran: list[Task] = []
    while max_runs is None or len(ran) < max_runs:
        # Read afresh each round: tasks enqueue others, and retries come due again.
        task = Task.objects.due(now or timezone.now(), queues).first()
        if task is None:
            break
        if claim(task, RUN_DUE):
            ran.append(run_claimed(task))
    return ran


def wait_until_drained(
    timeout: float = 30.0, *, queues: Sequence[str] | None = None, interval: float = 0.02
) -> None:
    """Wait until no task is queued or running (in ``queues``), or raise DrainTimeout."""
    pending = Task.objects.filter(status__in=[Status.QUEUED, Status.RUNNING])
    if queues is not None:
        pending = pending.filter(queue__in=list(queues))
    deadline = time.monotonic() + timeout
    while pending.exists():
        if time.monotonic() >= deadline:
            left = pending.order_by("enqueued_at")
            sample = ", ".join(str(t) for t in left[:5])
            raise DrainTimeout(
                f"{left.count()} tasks still queued or running after {timeout:g}s, e.g. {sample}. "
                "Is a pool running (taskq_pool, running_pool()), and is nothing delayed into the future?"
            )
        time.sleep(interval)


class ThreadWatch:
    """Record taskq threads started while watching, and the database connections they open."""

    def __init__(self, pool_name: str | None = None) -> None:
        self._suffix = pool_name or ""
        self._before = set(self._threads())
        self._opened: list[tuple[threading.Thread, BaseDatabaseWrapper]] = []
        self._lock = threading.Lock()
        self._uid = f"taskq.testing.ThreadWatch.{id(self)}"
        connection_created.connect(self._created, weak=False, dispatch_uid=self._uid)

    def _threads(self) -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t.name.startswith(THREAD_PREFIX) and t.name.endswith(self._suffix)
        ]

    def _created(self, sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        # connection_created fires in the thread that opened the connection.
        me = threading.current_thread()
        if me.name.startswith(THREAD_PREFIX) and me.name.endswith(self._suffix) and me not in self._before:
            with self._lock:
                self._opened.append((me, connection))

    def _leaks(self) -> tuple[list[threading.Thread], list[tuple[threading.Thread, BaseDatabaseWrapper]]]:
        alive = [t for t in self._threads() if t not in self._before]
        with self._lock:
            held = [(t, c) for t, c in self._opened if c.connection is not None]
        return alive, held

    def finish(self, grace: float = 2.0) -> list[str]:
        """Stop watching and describe each leak; close the sessions of threads that have ended."""
        connection_created.disconnect(dispatch_uid=self._uid)
        # A pool that was just stopped may need a moment for its last thread to return.
        deadline = time.monotonic() + grace
        alive, held = self._leaks()
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive, held = self._leaks()
        problems = [f"thread {t.name} is still running" for t in alive]
        for thread, conn in held:
            if thread.is_alive():
                problems.append(f"thread {thread.name} still holds a session on database {conn.alias!r}")
                continue
            problems.append(f"thread {thread.name} ended without closing its session on {conn.alias!r}")
            # Its thread is gone, so nobody else can use it; closing it here lets the
            # test database be dropped instead of failing (PostgreSQL) or hanging (MariaDB).
            conn.inc_thread_sharing()
            try:
                conn.close()
            finally:
                conn.dec_thread_sharing()
        return problems


@contextmanager
def running_pool(
    workers: int | None = None,
    queues: Sequence[str] | None = None,
    poll_interval: float = 0.05,
    stop_timeout: float | None = None,
) -> Iterator[Pool]:
    """Run a real pool for the block; always stop it, and raise PoolLeak if anything outlives it."""
    pool = Pool(workers=workers, queues=queues, poll_interval=poll_interval)
    watch = ThreadWatch(pool.name)
    uid = f"taskq.testing.running_pool.{pool.name}"

    def wake(sender: Any, task: Task, **kwargs: Any) -> None:
        # The per-process pool is woken on commit; this pool is not it, so wake it too.
        transaction.on_commit(pool.notify, using=task._state.db)

    task_enqueued.connect(wake, weak=False, dispatch_uid=uid)
    try:
        yield pool.start()
    finally:
        task_enqueued.disconnect(dispatch_uid=uid)
        stopped = pool.stop(stop_timeout)
        # stop() has already waited out the shutdown grace; what is left is stuck.
        problems = watch.finish(grace=1.0)
        if not stopped:
            problems.insert(0, "its dispatcher is still running")
        if problems:
            raise PoolLeak(
                f"pool {pool.name} did not stop cleanly: {'; '.join(problems)}. A task is still "
                "running: give tasks a timeout, or make the test release them."
            )
