"""A running task's view of itself: its row, its attempt, whether to stop; and its progress to report."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

if TYPE_CHECKING:
    from taskq.progress import Reporter


@dataclass(frozen=True)
class TaskContext:
    """The running task's view of itself, from ``taskq.current_task()``."""

    task_id: int
    attempt: int
    max_attempts: int
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    # The pool that claimed this attempt and when: with them, progress is written only to
    # this very attempt, even after an admin retry has started the count afresh.
    worker: str = ""
    started_at: datetime | None = None
    _reporter: Reporter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Imported here: `import taskq` brings this module, and must not load the models.
        from taskq.progress import Reporter

        reporter = Reporter(self.task_id, self.attempt, self.worker, self.started_at)
        object.__setattr__(self, "_reporter", reporter)

    @property
    def cancel_requested(self) -> bool:
        """True once someone has asked this task to stop; check it between steps."""
        return self.cancel_event.is_set()

    def progress(self, done: float, total: float | None = None, note: str = "") -> None:
        """Record how far this attempt has got; cheap to call often, stored at most once a second."""
        self._reporter.report(done, total, note)

    async def aprogress(self, done: float, total: float | None = None, note: str = "") -> None:
        """Record progress from an async task, writing it on the thread that runs the task."""
        # sync_to_async sends the call back to the runner's thread, whose connection the
        # runner closes; progress() on the event loop's thread only keeps the value.
        await sync_to_async(self._reporter.report)(done, total, note)

    @property
    def latest_progress(self) -> dict[str, Any] | None:
        """The latest progress reported in this attempt, written yet or not; None before any."""
        return self._reporter.latest


# A ContextVar, not a thread-local, so an async task sees it inside its event loop too.
_current: ContextVar[TaskContext | None] = ContextVar("taskq_current_task", default=None)


def current_task() -> TaskContext | None:
    """Return the context of the task running in this thread, or None outside a task."""
    return _current.get()
