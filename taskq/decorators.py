"""The @task decorator: per-function defaults, with the function itself left unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from taskq.exceptions import InvalidTask
from taskq.validation import check_options

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "taskq_defaults"
UNIQUE_KEY_MAX_LENGTH = 191  # Task.unique_key's max_length, which MariaDB can index in utf8mb4

# A unique key, or a function of the task's arguments that returns one (or None for no key).
UniqueKey = str | Callable[..., str | None]


def check_unique_key(key: object) -> str | None:
    """Return ``key`` if it is None or a string the unique_key column holds, else raise InvalidTask."""
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > UNIQUE_KEY_MAX_LENGTH:
        raise InvalidTask(
            f"unique_key must be a non-empty str of at most {UNIQUE_KEY_MAX_LENGTH} characters, "
            f'not {key!r}: build it from what makes the call a duplicate, e.g. f"sync-user-{{pk}}".'
        )
    return key


@dataclass(frozen=True)
class TaskDefaults:
    """Options a function carries; None means "use the next level down"."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    unique_key: UniqueKey | None = None

    def __post_init__(self) -> None:
        check_options(self.queue, self.priority, self.max_attempts, self.timeout)
        if not callable(self.unique_key):
            check_unique_key(self.unique_key)

    def key_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The unique key of a call with these arguments, or None for no key."""
        if not callable(self.unique_key):
            return self.unique_key
        key = self.unique_key(*args, **kwargs)
        if key is not None and not isinstance(key, str):
            raise InvalidTask(
                f"the unique_key function {self.unique_key!r} returned {key!r}: "
                "it must return a str, or None for no key."
            )
        return check_unique_key(key)


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
    unique_key: UniqueKey | None = None,
) -> Callable[[F], F]: ...
def task(
    fn: F | None = None,
    /,
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    unique_key: UniqueKey | None = None,
) -> F | Callable[[F], F]:
    """Attach default enqueue options to a task function; use bare or with arguments."""
    # unique_key may be a function of the call's arguments: f"sync-user-{user_id}".
    defaults = TaskDefaults(queue, priority, max_attempts, timeout, unique_key)

    def attach(func: F) -> F:
        setattr(func, ATTRIBUTE, defaults)
        return func

    return attach if fn is None else attach(fn)
