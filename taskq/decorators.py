"""The @task decorator: per-function defaults, with the function itself left unchanged."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, overload

from django.utils import timezone

from taskq.exceptions import InvalidTask
from taskq.validation import text_problem

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "taskq_defaults"

# The columns are 32-bit signed on every backend (MariaDB's unsigned max_attempts included).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
QUEUE_MAX_LENGTH = 64  # Task.queue's max_length


@dataclass(frozen=True)
class TaskDefaults:
    """Options a function carries; None means "use the next level down"."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_queue(self.queue)
        if self.priority is not None and not (_is_int(self.priority) and INT_MIN <= self.priority <= INT_MAX):
            raise InvalidTask(
                f"priority must be an int from {INT_MIN} to {INT_MAX}, not {self.priority!r}: "
                "pick a small number, higher runs first."
            )
        if self.max_attempts is not None and not (
            _is_int(self.max_attempts) and 1 <= self.max_attempts <= INT_MAX
        ):
            raise InvalidTask(
                f"max_attempts must be an int from 1 to {INT_MAX}, not {self.max_attempts!r}: "
                "pass 1 for a single attempt."
            )
        if self.timeout is not None and not _is_number(self.timeout):
            raise InvalidTask(f"timeout must be a positive number of seconds, not {self.timeout!r}.")
        if self.timeout is not None:
            check_seconds("timeout", self.timeout, allow_zero=False)


def check_queue(queue: object) -> None:
    """Raise InvalidTask unless ``queue`` is None or a name the queue column can hold."""
    if queue is None:
        return
    if not isinstance(queue, str) or not queue:
        raise InvalidTask(f"queue must be a non-empty string, not {queue!r}: pass a name such as 'default'.")
    if len(queue) > QUEUE_MAX_LENGTH:
        raise InvalidTask(
            f"queue names are at most {QUEUE_MAX_LENGTH} characters, not {len(queue)}: pick a shorter name."
        )
    problem = text_problem(queue)
    if problem:
        raise InvalidTask(f"queue {queue!r} {problem}: pick a plain name.")


def check_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    """Return ``value`` (seconds or a timedelta) as float seconds, or raise InvalidTask."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _is_number(value):
        seconds = float(value)  # type: ignore[arg-type]  # _is_number narrowed it
    else:
        raise InvalidTask(f"{name} must be seconds or a timedelta, not {value!r}.")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        least = "zero or more" if allow_zero else "more than zero"
        raise InvalidTask(f"{name} must be a finite number of seconds, {least}, not {value!r}.")
    try:
        timezone.now() + timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidTask(
            f"{name} of {value!r} seconds reaches past the year 9999: pass a shorter {name}."
        ) from None
    return seconds


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
