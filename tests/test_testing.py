"""taskq.testing: run_due(), wait_until_drained(), running_pool(), ThreadWatch, and the plugin's fixtures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from threading import Thread
from typing import Any

import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq import enqueue, options
from taskq.models import Status, Task
from taskq.pool import Pool
from taskq.testing import (
    RUN_DUE,
    DrainTimeout,
    PoolLeak,
    ThreadWatch,
    run_due,
    running_pool,
    wait_until_drained,
)
from tests.helpers import other_sessions, taskq_threads, wait_until
from tests.test_immediate import enqueue_child
from tests.testapp import tasks
from tests.testapp.models import Item


def assert_no_sessions_left() -> None:
    # Threads' sessions end as they close; PostgreSQL reports the end a moment later.
    if other_sessions() is not None:
        wait_until(lambda: other_sessions() == 0, timeout=10)


@pytest.mark.django_db
class TestRunDue:
    def test_runs_due_tasks_in_claim_order_and_returns_them(self) -> None:
        low = enqueue(tasks.add, 1, 1)
        high = options(priority=5).enqueue(tasks.add, 2, 2)
        later = options(delay=3600).enqueue(tasks.add, 3, 3)
        ran = run_due()
        assert [(t.pk, t.status, t.result, t.worker) for t in ran] == [
            (high.pk, Status.SUCCEEDED, 4, RUN_DUE),
            (low.pk, Status.SUCCEEDED, 2, RUN_DUE),
        ]
        assert Task.objects.get(pk=later.pk).status == Status.QUEUED
        assert run_due() == []

    def test_runs_what_tasks_enqueue_in_the_same_call(self) -> None:
        enqueue(enqueue_child, "fanned out")
        assert [t.path for t in run_due()] == [
            "tests.test_immediate.enqueue_child",
            "tests.testapp.tasks.create_item",
        ]
        assert Item.objects.filter(name="fanned out").exists()

    def test_queues_and_max_runs_limit_it(self) -> None:
        other = options(queue="other").enqueue(tasks.add, 0, 1)
        first, second = enqueue(tasks.add, 1, 1), enqueue(tasks.add, 2, 2)
        assert [t.pk for t in run_due(queues=["default"], max_runs=1)] == [first.pk]
        assert [t.pk for t in run_due(queues=["default"])] == [second.pk]
        assert [t.pk for t in run_due()] == [other.pk]

    def test_leaves_tasks_someone_else_is_running(self) -> None:
        task = enqueue(tasks.add, 1, 1)
        Task.objects.filter(pk=task.pk).update(status=Status.RUNNING, worker="elsewhere", attempts=1)
        assert run_due() == []


@pytest.mark.django_db(transaction=True)
class TestRunningPool:
    def test_runs_tasks_until_drained_then_stops_and_closes_its_sessions(self) -> None:
        with running_pool(workers=3) as pool:
            assert pool.alive
            for n in range(20):
                enqueue(tasks.create_item, f"item {n}")
            wait_until_drained(timeout=30)
        assert not pool.alive
        assert not taskq_threads()
        assert Item.objects.count() == 20
        assert Task.objects.succeeded().count() == 20
        assert_no_sessions_left()

    def test_stops_when_the_block_raises(self) -> None:
        with pytest.raises(RuntimeError, match="in the block"), running_pool() as pool:
            raise RuntimeError("in the block")
        assert not pool.alive
        assert not taskq_threads()

    def test_raises_when_a_task_outlives_the_pool(self, settings: Any) -> None:
        settings.TASKQ_SHUTDOWN_GRACE = 0.1
        block = running_pool(workers=1)
        block.__enter__()
        try:
            enqueue(tasks.block, "hung")
            assert tasks.event("hung:started").wait(10)
            with pytest.raises(PoolLeak, match=r"taskq-runner-\S+ is still running"):
                block.__exit__(None, None, None)
        finally:
            tasks.event("hung").set()
        wait_until(lambda: not taskq_threads())
        assert Task.objects.get().status == Status.SUCCEEDED
        assert_no_sessions_left()


@pytest.mark.django_db
def test_wait_until_drained_times_out_while_tasks_wait() -> None:
    enqueue(tasks.add, 1, 2)
    options(queue="elsewhere").enqueue(tasks.add, 1, 2)
    with pytest.raises(DrainTimeout, match=r"2 tasks still queued or running after 0\.05s"):
        wait_until_drained(timeout=0.05)
    run_due(queues=["default"])
    wait_until_drained(timeout=0.05, queues=["default"])


def _in_thread(name: str, work: Callable[[], object], stop: threading.Event | None = None) -> Thread:
    """Start a thread that does ``work``; given ``stop``, it then waits for it and closes its sessions."""
    done = threading.Event()

    def run() -> None:
        work()
        done.set()
        if stop is not None:
            stop.wait(10)
            connections.close_all()

    thread = Thread(target=run, name=name, daemon=True)
    thread.start()
    assert done.wait(10)
    return thread


@pytest.mark.django_db(transaction=True)
class TestThreadWatch:
    def test_closes_and_reports_a_session_left_by_an_ended_taskq_thread(self) -> None:
        watch = ThreadWatch()
        _in_thread("taskq-test-leaky", Item.objects.count).join()
        if other_sessions() is not None:
            wait_until(lambda: other_sessions() == 1)
        assert watch.finish(grace=0.1) == [
            "thread taskq-test-leaky ended without closing its session on 'default'"
        ]
        assert_no_sessions_left()

    def test_reports_a_taskq_thread_still_running_with_its_session(self) -> None:
        stop = threading.Event()
        watch = ThreadWatch()
        thread = _in_thread("taskq-test-alive", Item.objects.count, stop)
        try:
            assert watch.finish(grace=0.05) == [
                "thread taskq-test-alive is still running",
                "thread taskq-test-alive still holds a session on database 'default'",
            ]
        finally:
            stop.set()
            thread.join()
        assert_no_sessions_left()

    def test_ignores_other_threads_and_threads_older_than_itself(self) -> None:
        stop = threading.Event()
        older = _in_thread("taskq-test-older", lambda: None, stop)
        watch = ThreadWatch()
        opened: list[BaseDatabaseWrapper] = []

        def query() -> None:
            opened.append(connections["default"])
            Item.objects.count()

        _in_thread("not-taskq", query).join()
        try:
            assert watch.finish(grace=0.05) == []
        finally:
            stop.set()
            older.join()
            # The plain thread's session is this test's to close, as it would be a user's.
            opened[0].inc_thread_sharing()
            opened[0].close()
        assert_no_sessions_left()


class TestPluginFixtures:
    def test_taskq_pool_runs_tasks_for_the_test(self, taskq_pool: Pool) -> None:
        assert taskq_pool.alive
        for n in range(5):
            enqueue(tasks.create_item, f"pooled {n}")
        wait_until_drained()
        assert Item.objects.count() == 5

    @pytest.mark.django_db
    @pytest.mark.usefixtures("taskq_immediate")
    def test_taskq_immediate_runs_tasks_on_commit(self, django_capture_on_commit_callbacks: Any) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            task = enqueue(tasks.add, 2, 3)
        task.refresh_from_db()
        assert (task.status, task.result) == (Status.SUCCEEDED, 5)

    def test_taskq_run_due_runs_queued_tasks(self, taskq_run_due: Callable[..., list[Task]]) -> None:
        enqueue(tasks.add, 2, 3)
        [task] = taskq_run_due()
        assert (task.status, task.result) == (Status.SUCCEEDED, 5)
