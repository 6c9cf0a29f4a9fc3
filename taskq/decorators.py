"""The @task decorator: per-function defaults, with the function itself left unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from taskq.validation import check_options

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
        check_options(self.queue, self.priority, self.max_attempts, self.timeout)


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
