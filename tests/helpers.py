"""Helpers shared by taskq's tests: deadline polling, session counts and pools' heartbeat rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connection
from django.utils import timezone

if TYPE_CHECKING:
    from taskq.models import Worker

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def worker_row(name: str, age: float = 1.0, *, seen: datetime | None = None, **fields: Any) -> Worker:
    """A pool's heartbeat row for ``name`` (host:pid:id), last seen ``age`` seconds ago or at ``seen``."""
    from taskq.models import Worker

    host, _, pid = name.rpartition(":")[0].rpartition(":")
    fields = {"threads": 4, **fields}
    last = seen if seen is not None else timezone.now() - timedelta(seconds=age)
    return Worker.objects.create(name=name, hostname=host, pid=int(pid), last_heartbeat=last, **fields)


def taskq_threads() -> list[threading.Thread]:
    """Live threads that belong to a taskq pool."""
    return [t for t in threading.enumerate() if t.name.startswith("taskq-")]


def other_sessions() -> int | None:
    """Sessions on the test database other than this thread's own, or None on SQLite."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        elif connection.vendor == "mysql":
            cursor.execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST "
                "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            )
        else:
            return None
        row = cursor.fetchone()
    return int(row[0])


def database_url() -> str:
    """A DATABASE_URL naming the test database, for child processes to share it."""
    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    scheme = "postgres" if connection.vendor == "postgresql" else "mysql"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"{scheme}://{user}{password}@{host}{port}/{cfg['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a ``manage.py`` child that uses the test settings and test database."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(),
        PYTHONPATH=str(root),
        PYTHONUNBUFFERED="1",
    )
    env.pop("COVERAGE_PROCESS_START", None)
    env.update(extra)
    return env


def run_status(*flags: str) -> tuple[int, str, str]:
    """Run ``manage.py taskq_status *flags``; return its exit status, output and errors."""
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    try:
        call_command("taskq_status", *flags, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()
