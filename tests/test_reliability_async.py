"""Async tasks run in the pool's threads and leave no session behind."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import enqueue, options
from taskq.models import Status
from tests.helpers import other_sessions, wait_until
from tests.test_reliability import wait_for_status
from tests.testapp import tasks
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db


def test_an_async_task_uses_the_orm_and_sees_its_context(make_pool: Any) -> None:
    make_pool(workers=2)
    task = wait_for_status(enqueue(tasks.async_attempt, "from-a-coroutine"), Status.SUCCEEDED, Status.FAILED)
    assert (task.status, task.result, task.error) == (Status.SUCCEEDED, 1, "")
    assert Item.objects.filter(name="from-a-coroutine").count() == 1


def test_async_tasks_close_their_sessions_like_sync_ones(make_pool: Any) -> None:
    make_pool(workers=3)
    batch = [enqueue(tasks.async_attempt, f"a{i}") for i in range(12)]
    for task in batch:
        wait_for_status(task, Status.SUCCEEDED)
    if other_sessions() is None:
        pytest.skip("SQLite has no server sessions to count")
    # The pool is still running: idle, it holds no session at all.
    wait_until(lambda: other_sessions() == 0)


def test_a_failing_async_task_is_retried_then_failed(make_pool: Any) -> None:
    make_pool(workers=1)
    task = wait_for_status(options(max_attempts=2).enqueue(tasks.async_fail), Status.FAILED)
    assert (task.attempts, task.error) == (2, "ValueError: async boom")
    assert "async_fail" in task.traceback
