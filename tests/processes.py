"""Run manage.py commands as real processes against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = {"postgresql": "postgres", "mysql": "mysql"}


def database_url() -> str:
    """A DATABASE_URL naming the test database this process uses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    address = f"{db['HOST']}:{db['PORT']}" if db["PORT"] else db["HOST"]
    return f"{SCHEMES[connection.vendor]}://{credentials}@{address}/{db['NAME']}"


def _command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` to completion and return its exit status and output."""
    return subprocess.run(
        _command(*args), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def started(*args: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``manage.py *args`` in the background; kill it on the way out if it still runs."""
    proc = subprocess.Popen(
        _command(*args), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
