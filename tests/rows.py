"""Task rows in a chosen state, written as enqueue() writes them and then moved along."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from taskq import options
from taskq.models import Status, Task
from tests.testapp import tasks


def make(fn: Any = tasks.add, *args: Any, queue: str = "default", **fields: Any) -> Task:
    """Enqueue ``fn(*args)`` on ``queue``, then set ``fields`` on its row."""
    task = options(queue=queue).enqueue(fn, *(args or (1, 2)))
    if fields:
        Task.objects.filter(pk=task.pk).update(**fields)
        task.refresh_from_db()
    return task


def finished(status: Status, **fields: Any) -> dict[str, Any]:
    """The fields of a task that ran for two seconds and finished a second ago as ``status``."""
    now = timezone.now()
    return {
        "status": status,
        "attempts": 1,
        "started_at": now - timedelta(seconds=3),
        "finished_at": now - timedelta(seconds=1),
        "worker": "web-1:42:cafe",
        **fields,
    }
