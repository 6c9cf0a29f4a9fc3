"""taskq's exceptions: each subclasses a builtin and TaskqError, so callers can catch either."""

from __future__ import annotations

from datetime import timedelta


class TaskqError(Exception):
    """Base class of every exception taskq raises on purpose."""


class InvalidTask(ValueError, TaskqError):
    """enqueue() was given a callable or arguments that cannot be stored and run later."""


class NotMigrated(TaskqError, RuntimeError):
    """taskq's tables do not exist yet in the database: manage.py migrate has not run."""


class BadTaskSignature(TaskqError):
    """A task row's signature does not match its path and arguments."""


class TaskTimeout(TimeoutError, TaskqError):
    """A task ran longer than its timeout."""


class WorkerLost(TaskqError):
    """The process running a task died, so its lease expired."""


class ResultNotStorable(TaskqError):
    """A task returned a value that cannot be stored; the attempt fails for good."""


class ErrorNotStorable(TaskqError):
    """A task's error could not be stored as raised; a shortened form was recorded instead."""


class Retry(TaskqError):
    """Raise inside a task to run it again later, counting the attempt."""

    def __init__(self, delay: float | timedelta | None = None, reason: str = "") -> None:
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        self.delay = delay
        self.reason = reason
        super().__init__(reason or "retry requested")


class GiveUp(TaskqError):
    """Raise inside a task to fail it for good, whatever attempts remain."""
