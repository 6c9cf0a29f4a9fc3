"""What a result file needs to be read later: the machine, its load, versions and settings."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.configs import Config
from bench.dbtools import server_connect
from bench.settings import database

PACKAGES = [
    "Django",
    "django-tasks",
    "django-tasks-db",
    "huey",
    "redis",
    "psycopg",
    "psycopg-pool",
    "mysqlclient",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gib() -> float | None:
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        return round(int(first.split()[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _server_version(engine: str) -> str | None:
    try:
        conn = server_connect(engine, database(engine, 0, 0))
    except Exception as exc:
        return f"unreachable: {exc}"
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT version()")
        return str(cursor.fetchone()[0])
    finally:
        conn.close()


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def collect(configs: list[Config], args: dict[str, Any]) -> dict[str, Any]:
    """Everything about the environment of this run."""
    engines = sorted({c.engine for c in configs if c.server})
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "os": platform.platform(),
            "load_at_start": load(),
        },
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "taskq_commit": _git_commit(),
        "taskq_source": os.environ.get("BENCH_TASKQ_SRC") or "this checkout",
        "servers": {e: _server_version(e) for e in engines} | {"sqlite": sqlite3.sqlite_version},
        "configs": {c.name: c.env() for c in configs},
        "args": args,
    }
