"""What a running task can learn about itself: its row's id, its attempt, and whether to stop."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskContext:
    """The running task's view of itself, from ``taskq.current_task()``."""

    task_id: int
    attempt: int
    max_attempts: int
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        """True once someone has asked this task to stop; check it between steps."""
        return self.cancel_event.is_set()


# A ContextVar, not a thread-local, so an async task sees it inside its event loop too.
_current: ContextVar[TaskContext | None] = ContextVar("taskq_current_task", default=None)


def current_task() -> TaskContext | None:
    """Return the context of the task running in this thread, or None outside a task."""
    return _current.get()
