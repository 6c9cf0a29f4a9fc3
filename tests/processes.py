"""Run manage.py commands as real processes against the test database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import subprocess_env

ROOT = Path(__file__).resolve().parent.parent


def _command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` to completion and return its exit status and output."""
    return subprocess.run(
        _command(*args),
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def started(*args: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``manage.py *args`` in the background; kill it on the way out if it still runs."""
    proc = subprocess.Popen(
        _command(*args),
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
