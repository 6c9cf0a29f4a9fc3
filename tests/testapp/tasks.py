"""Task functions the tests enqueue. Module-level, as taskq requires."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connection

import taskq
from taskq.exceptions import GiveUp, Retry
from tests.testapp.models import Item

# Tests hand tasks events to wait on or set, keyed by a name the test passes in.
EVENTS: dict[str, threading.Event] = {}
SEEN: dict[str, list[Any]] = {}


def event(name: str) -> threading.Event:
    return EVENTS.setdefault(name, threading.Event())


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def create_item(name: str) -> int:
    return Item.objects.create(name=name).pk


def backend_pid(key: str) -> int:
    """Record which database session ran this task."""
    with connection.cursor() as cursor:
        vendor = connection.vendor
        if vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        elif vendor == "mysql":
            cursor.execute("SELECT CONNECTION_ID()")
        else:
            cursor.execute("SELECT 1")
        pid = int(cursor.fetchone()[0])
    SEEN.setdefault(key, []).append(pid)
    return pid


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def give_up() -> None:
    raise GiveUp("no point trying again")


def retry_once(key: str) -> str:
    """Ask for a retry on the first attempt, succeed on the second."""
    context = taskq.current_task()
    assert context is not None
    SEEN.setdefault(key, []).append(context.attempt)
    if context.attempt == 1:
        raise Retry(delay=0)
    return "second time lucky"


def block(name: str, timeout: float = 30.0) -> str:
    """Signal that it started, then wait until the test releases it."""
    event(f"{name}:started").set()
    released = event(name).wait(timeout)
    return "released" if released else "gave up waiting"


def wait_for_cancel(name: str, timeout: float = 30.0) -> str:
    event(f"{name}:started").set()
    context = taskq.current_task()
    assert context is not None
    released = context.cancel_event.wait(timeout)
    return "stopped" if released else "never asked to stop"


def not_json() -> object:
    return object()


@taskq.task(queue="special", priority=7, max_attempts=5, timeout=12.5)
def decorated(x: int) -> int:
    return x * 2


async def async_create(name: str) -> int:
    item = await Item.objects.acreate(name=name)
    return item.pk
