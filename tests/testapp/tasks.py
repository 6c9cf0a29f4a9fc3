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


def mark_then_block(name: str, timeout: float = 30.0) -> str:
    """Write an Item, which another process can see, once started; then wait like block()."""
    Item.objects.create(name=name)
    return block(name, timeout)


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


def record(key: str, value: Any) -> Any:
    """Note that this task ran, so a test can read the order tasks ran in."""
    SEEN.setdefault(key, []).append(value)
    return value


def fail_each_attempt() -> None:
    """Fail with an error that names the attempt, so each attempt's error is told apart."""
    context = taskq.current_task()
    assert context is not None
    raise ValueError(f"attempt {context.attempt} failed")


def retry_in(seconds: float) -> None:
    raise Retry(delay=seconds, reason="not yet")


def attempt_blocks(name: str, timeout: float = 30.0) -> int:
    """Block each attempt until the test releases it, then touch the database and record the session."""
    context = taskq.current_task()
    assert context is not None
    key = f"{name}:{context.attempt}"
    event(f"{key}:started").set()
    event(key).wait(timeout)
    backend_pid(key)
    from django.db import connections

    # This thread's own wrapper: the module's ``connection`` proxy would resolve in the reader's thread.
    SEEN.setdefault(f"{key}:connection", []).append(connections["default"])
    return context.attempt


def fail_when_cancelled(name: str, timeout: float = 30.0) -> None:
    """Stop by raising once asked to, as a task that aborts half-way would."""
    wait_for_cancel(name, timeout)
    raise RuntimeError("stopped half-way")


async def async_attempt(name: str) -> int:
    """Touch the ORM from a coroutine and report which attempt this is."""
    context = taskq.current_task()
    assert context is not None
    await Item.objects.acreate(name=name)
    return context.attempt


async def async_fail() -> None:
    raise ValueError("async boom")


def create_item_when_file_exists(name: str, path: str, timeout: float = 60.0) -> int:
    """Record the start in the database, then hold the thread until ``path`` exists (across processes)."""
    # Imported here because this module's header is shared with other work: append-only.
    import os
    import time

    pk = create_item(name)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)
    return pk


def slow_create_item(name: str, seconds: float) -> int:
    """Spend a little time, then write: a batch of these spans a database restart."""
    import time

    time.sleep(seconds)
    return create_item(name)


def barrier(prefix: str, parties: int, timeout: float = 20.0) -> int:
    """Finish only once ``parties`` of these run at the same time, proving that many live threads."""
    import time

    create_item(f"{prefix}:{threading.current_thread().name}:{time.monotonic_ns()}")
    deadline = time.monotonic() + timeout
    while Item.objects.filter(name__startswith=f"{prefix}:").count() < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {parties} threads ran {prefix} at once")
        time.sleep(0.05)
    return parties


def exit_thread(code: int) -> None:
    """Call sys.exit() the way some libraries do on an error, from inside a task."""
    raise SystemExit(code)


def hold_session(name: str, timeout: float = 30.0) -> int:
    """Open a database session, then wait with it open until released; return the attempt."""
    context = taskq.current_task()
    assert context is not None
    backend_pid(name)
    event(f"{name}:started").set()
    event(name).wait(timeout)
    return context.attempt


def block_then_exit(name: str, timeout: float = 30.0) -> None:
    """Hang until released, then call sys.exit(): a hung call whose library gives up hard."""
    event(f"{name}:started").set()
    event(name).wait(timeout)
    raise SystemExit(0)


def create_item_once_pools_claimed(name: str, pools: int, timeout: float = 60.0) -> int:
    """Write, but only once ``pools`` different pools have claimed tasks, so no one pool can take them all."""
    import time

    from taskq.models import Task

    deadline = time.monotonic() + timeout
    while Task.objects.exclude(worker="").values("worker").distinct().count() < pools:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {pools} pools claimed any task")
        time.sleep(0.05)
    return create_item(name)
