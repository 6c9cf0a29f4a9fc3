"""Durable background tasks that run inside a Django site's own processes."""

from __future__ import annotations

from taskq.context import current_task
from taskq.decorators import task
from taskq.enqueue import enqueue, options
from taskq.exceptions import (
    GiveUp,
    InvalidTask,
    Retry,
    TaskqError,
    TaskTimeout,
)
from taskq.schedule_entries import periodic

__all__ = [
    "GiveUp",
    "InvalidTask",
    "Retry",
    "TaskTimeout",
    "TaskqError",
    "current_task",
    "enqueue",
    "options",
    "periodic",
    "task",
]
