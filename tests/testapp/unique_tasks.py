"""Tasks with unique keys, and the entry point of the processes that race to enqueue them."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import taskq


@taskq.task(unique_key=lambda user_id, **_: f"sync-user-{user_id}")
def sync_user(user_id: int, note: str = "") -> int:
    """Stand in for syncing one user: one queued or running sync per user."""
    return user_id


@taskq.task(unique_key=lambda name: f"blocking-{name}")
def sync_blocking(name: str) -> str:
    """A keyed task that runs until the test releases it, so its key stays live."""
    # Imported here, so gunicorn can import this module before django.setup() has run.
    from tests.testapp import tasks

    return tasks.block(name)


@taskq.task(unique_key=lambda user_id: None if user_id < 0 else f"maybe-{user_id}")
def maybe_keyed(user_id: int) -> int:
    """A key function that opts some calls out of uniqueness by returning None."""
    return user_id


@taskq.task(unique_key=lambda user_id: user_id)
def badly_keyed(user_id: int) -> int:
    """A key function that returns an int, which enqueue must refuse."""
    return user_id


def race(go_file: str, threads: int, name: str) -> None:
    """Print "ready", await ``go_file``, enqueue sync_blocking(name) from ``threads`` threads at once."""
    # Called after django.setup(); prints one JSON line of [task id, created] pairs.
    from django.db import connections

    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def call() -> None:
        try:
            connections["default"].ensure_connection()
            barrier.wait(30)
            task = taskq.enqueue(sync_blocking, name)
            results.append((task.pk, task.created))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=call) for _ in range(threads)]
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.01)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    if errors:
        sys.exit(f"{len(errors)} enqueue(s) failed: {errors[0]!r}")
    print(json.dumps(results), flush=True)


def wsgi() -> Any:
    """A WSGI app (for gunicorn) on the test settings, without a pool, that enqueues sync_blocking."""
    # A POST enqueues sync_blocking(<its path>) and answers [task id, created, pid] as JSON.
    import django
    from django.conf import settings
    from django.db import close_old_connections

    # Only the test's own pool runs tasks, so the one that holds the key stays put.
    settings.TASKQ_AUTOSTART = False
    django.setup()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        if environ["REQUEST_METHOD"] == "GET":
            return [str(os.getpid()).encode()]  # which worker answered, for the test to wait on
        try:
            task = taskq.enqueue(sync_blocking, environ["PATH_INFO"].strip("/"))
        finally:
            close_old_connections()
        return [json.dumps([task.pk, task.created, os.getpid()]).encode()]

    return app
