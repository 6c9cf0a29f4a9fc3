"""The @task decorator: per-function defaults, with the function itself left unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from taskq.exceptions import InvalidTask

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "taskq_defaults"


@dataclass(frozen=True)
class TaskDefaults:
    """Options a function carries; None means "use the next level down"."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.queue is not None and (not isinstance(self.queue, str) or not self.queue):
            raise InvalidTask(f"queue must be a non-empty string, not {self.queue!r}.")
        if self.priority is not None and not _is_int(self.priority):
            raise InvalidTask(f"priority must be an int, not {self.priority!r}.")
        if self.max_attempts is not None and not (_is_int(self.max_attempts) and self.max_attempts >= 1):
            raise InvalidTask(f"max_attempts must be an int of at least 1, not {self.max_attempts!r}.")
        if self.timeout is not None and not (_is_number(self.timeout) and self.timeout > 0):
            raise InvalidTask(f"timeout must be a positive number of seconds, not {self.timeout!r}.")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def defaults_of(fn: Callable[..., Any]) -> TaskDefaults:
    """Return the defaults @task attached to ``fn``, or empty ones."""
    found = getattr(fn, ATTRIBUTE, None)
    return found if isinstance(found, TaskDefaults) else TaskDefaults()


@overload
def task(fn: F, /) -> F: ...
@overload
def task(
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> Callable[[F], F]: ...
def task(
    fn: F | None = None,
    /,
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> F | Callable[[F], F]:
    """Attach default enqueue options to a task function; use bare or with arguments."""
    defaults = TaskDefaults(queue, priority, max_attempts, timeout)

    def attach(func: F) -> F:
        setattr(func, ATTRIBUTE, defaults)
        return func

    return attach if fn is None else attach(fn)
