"""Checks that decide, at enqueue time, whether a call can be stored and run later."""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from typing import Any

from django.db.models import Model
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
    if fn.__module__ == "__main__":
        raise InvalidTask(
            f"{fn.__name__} is defined in __main__, which a worker cannot import: move it to "
            "an importable module."
        )
    path = f"{fn.__module__}.{fn.__qualname__}"
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


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidTask(f"{where} is {value!r}, which JSON cannot hold: pass a finite number or None.")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidTask(
                    f"{where} has the key {key!r}; JSON object keys must be strings: convert "
                    "the keys with str()."
                )
            _check(item, f"{where}[{key!r}]")
        return
    hint = next((h for types, h in _HINTS if isinstance(value, types)), None)
    hint = hint or (
        "pass plain JSON (str, int, float, bool, None, list, dict), e.g. str(value) or value.isoformat()"
    )
    raise InvalidTask(f"{where} is a {type(value).__name__}, which is not JSON: {hint}.")


def clean_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Return the arguments as they will come back from the database, or raise InvalidTask."""
    _check(list(args), "args")
    for name, value in kwargs.items():
        _check(value, f"kwargs[{name!r}]")
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
    _check(value, "the return value")
