"""Checks that decide, at enqueue time, whether a call can be stored and run later."""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeGuard

from django.db.models import Model
from django.utils import timezone
from django.utils.module_loading import import_string

from taskq.conf import settings
from taskq.exceptions import InvalidTask

_HINTS: list[tuple[type | tuple[type, ...], str]] = [
    (Model, "pass its primary key (obj.pk) and fetch the object inside the task"),
    (bytes, "decode it to str, or base64-encode binary data"),
    ((set, frozenset), "pass a list"),
]


def task_path(fn: Callable[..., Any]) -> str:
    """Return the dotted path of a module-level function, or raise InvalidTask saying why not."""
    if isinstance(fn, functools.partial):
        raise InvalidTask(
            "functools.partial objects cannot be enqueued: enqueue the function itself and "
            "pass the bound arguments to enqueue()."
        )
    if inspect.ismethod(fn):
        raise InvalidTask(
            f"{fn.__qualname__} is a bound method, which cannot be stored: enqueue a "
            "module-level function and pass the object's primary key to it."
        )
    if inspect.isbuiltin(fn) or not inspect.isfunction(fn):
        raise InvalidTask(
            f"{fn!r} is not a Python function defined with def: wrap it in a module-level "
            "function and enqueue that."
        )
    if fn.__name__ == "<lambda>":
        raise InvalidTask(
            "lambdas cannot be enqueued because they have no importable name: define a "
            "module-level function with def and enqueue it."
        )
    if "<locals>" in fn.__qualname__:
        raise InvalidTask(
            f"{fn.__qualname__} is defined inside another function, so a worker cannot import "
            "it: move it to module level."
        )
    if "." in fn.__qualname__:
        raise InvalidTask(
            f"{fn.__qualname__} is a method, which cannot be stored: enqueue a module-level "
            "function and pass the object's primary key to it."
        )
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise InvalidTask(
            f"{fn.__qualname__} is a generator function, whose body would never run: make it "
            "a plain function that does the work (return a list if it produces values)."
        )
    if fn.__module__ == "__main__":
        raise InvalidTask(
            f"{fn.__name__} is defined in __main__, which a worker cannot import: move it to "
            "an importable module."
        )
    path = f"{fn.__module__}.{fn.__qualname__}"
    if len(path) > PATH_MAX_LENGTH:
        raise InvalidTask(
            f"{path} is {len(path)} characters long, over the {PATH_MAX_LENGTH} the path column "
            "holds: enqueue a function with a shorter module path and name."
        )
    try:
        found = import_string(path)
    except ImportError:
        found = None
    if found is not fn:
        raise InvalidTask(
            f"{path} does not import back to this function (is it shadowed or created at run "
            "time?): enqueue a function reachable by its module and name."
        )
    return path


# MariaDB refuses JSON with 32 nested lists or dicts (its depth limit of 32 counts the
# values inside the innermost one), so every backend keeps to the same limit.
MAX_NESTING = 31
MAX_INT_DIGITS = 4300  # Python's default int-to-str limit, which json.loads in a worker obeys
_TOO_BIG = 10**MAX_INT_DIGITS
# The columns are 32-bit signed on every backend (MariaDB's unsigned max_attempts included).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
QUEUE_MAX_LENGTH = 64  # Task.queue's max_length
PATH_MAX_LENGTH = 255  # Task.path's max_length
_MAX_SECONDS = 10**12  # beyond the year 9999 from any date a datetime can hold


def check_options(queue: object, priority: object, max_attempts: object, timeout: object) -> None:
    """Raise InvalidTask unless each option given (not None) fits its column on every backend."""
    check_queue(queue)
    if priority is not None and not (_is_int(priority) and INT_MIN <= priority <= INT_MAX):
        raise InvalidTask(
            f"priority must be an int from {INT_MIN} to {INT_MAX}, not {priority!r}: "
            "pick a small number, higher runs first."
        )
    if max_attempts is not None and not (_is_int(max_attempts) and 1 <= max_attempts <= INT_MAX):
        raise InvalidTask(
            f"max_attempts must be an int from 1 to {INT_MAX}, not {max_attempts!r}: "
            "pass 1 for a single attempt."
        )
    if timeout is not None:
        if not _is_number(timeout):
            raise InvalidTask(f"timeout must be a positive number of seconds, not {timeout!r}.")
        check_seconds("timeout", timeout, allow_zero=False)


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
    elif _is_int(value) and abs(value) > _MAX_SECONDS:
        seconds = math.inf if value > 0 else -math.inf  # float() of such an int overflows
    elif _is_number(value):
        seconds = float(value)
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


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise InvalidTask if ``fn(*args, **kwargs)`` does not fit the function's parameters."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidTask(
            f"{fn.__qualname__}{inspect.signature(fn)} cannot be called with these arguments "
            f"({exc}): pass the arguments its definition accepts."
        ) from None


def runnable(path: str) -> Callable[..., Any]:
    """Import ``path`` and return the module-level function it names, or raise InvalidTask."""
    try:
        fn = import_string(path)
    except ImportError as exc:
        raise InvalidTask(
            f"{path!r} cannot be imported ({exc}): deploy the code that defines it, or cancel the task."
        ) from None
    if task_path(fn) != path:
        raise InvalidTask(
            f"{path!r} is another name for {fn.__module__}.{fn.__qualname__}: enqueue the function "
            "under the module and name where it is defined."
        )
    return fn  # type: ignore[no-any-return]  # import_string is untyped


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def text_problem(text: str) -> str | None:
    """Say why a string cannot be stored on every backend, or return None if it can."""
    if "\x00" in text:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (e.g. \\ud800), which is not valid UTF-8"
    return None


def _check(value: Any, where: str, level: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise InvalidTask(f"{where} {problem}: remove it, or base64-encode binary data.")
        return
    if isinstance(value, int):
        if abs(value) >= _TOO_BIG:
            raise InvalidTask(
                f"{where} is an int of more than {MAX_INT_DIGITS} digits, which Python's JSON "
                "refuses to read back: pass it as a str and convert it with int() in the task."
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidTask(f"{where} is {value!r}, which JSON cannot hold: pass a finite number or None.")
        return
    if isinstance(value, (list, tuple, dict)) and level > MAX_NESTING:
        raise InvalidTask(
            f"{where} nests lists and dicts more than 32 levels deep, the JSON limit taskq keeps "
            "on every backend (MariaDB's): flatten it, or store it in a model and pass its key."
        )
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", level + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_key(key, where)
            _check(item, f"{where}[{key!r}]", level + 1)
        return
    hint = next((h for types, h in _HINTS if isinstance(value, types)), None)
    hint = hint or (
        "pass plain JSON (str, int, float, bool, None, list, dict), e.g. str(value) or value.isoformat()"
    )
    name = type(value).__name__
    raise InvalidTask(f"{where} is {_article(name)} {name}, which is not JSON: {hint}.")


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str):
        raise InvalidTask(
            f"{where} has the key {key!r}; JSON object keys must be strings: convert the keys with str()."
        )
    problem = text_problem(key)
    if problem:
        raise InvalidTask(f"{where} has a key that {problem}: rename the key.")


def clean_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Return the arguments as they will come back from the database, or raise InvalidTask."""
    _check(list(args), "args", 1)
    for name, value in kwargs.items():
        _check_key(name, "kwargs")
        _check(value, f"kwargs[{name!r}]", 2)
    encoded = json.dumps([args, kwargs], separators=(",", ":"))
    limit = settings.max_args_bytes
    if len(encoded.encode()) > limit:
        raise InvalidTask(
            f"the arguments take {len(encoded.encode())} bytes as JSON, over the "
            f"TASKQ_MAX_ARGS_BYTES limit of {limit}: store large data in a model or a file and "
            "pass its key instead."
        )
    # A round trip makes tuples lists now rather than surprising the task later.
    cleaned_args, cleaned_kwargs = json.loads(encoded)
    return cleaned_args, cleaned_kwargs


def check_result(value: Any) -> None:
    """Raise InvalidTask if a task's return value cannot be stored as JSON."""
    _check(value, "the return value", 1)
