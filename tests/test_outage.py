"""Database outage: PostgreSQL stops and starts while a worker process runs a batch.

The shared PostgreSQL on 5432 must never be restarted, so this test makes its own
throwaway cluster (created on first use, stopped at the end of the session), migrates a
database there, and points a real ``manage.py taskq_worker`` process at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.helpers import subprocess_env, wait_until
from tests.test_crash import LEASE, ROOT, StartWorker, start_worker

__all__ = ["start_worker"]  # the fixture, imported so this module can request it

CLUSTER = "taskq_outage"
PORT = int(os.environ.get("TASKQ_TEST_OUTAGE_PORT", "5499"))
URL = f"postgres://postgres@127.0.0.1:{PORT}/taskq_outage"
WORKERS = 4
BATCH = 40


def _skip_reason() -> str | None:
    if os.environ.get("TASKQ_TEST_RESTART_POSTGRES") != "1":
        return (
            "stops and starts a throwaway PostgreSQL cluster: set TASKQ_TEST_RESTART_POSTGRES=1 "
            "to run it (CI does)"
        )
    if connection.vendor != "postgresql":
        return "runs only when DATABASE_URL names PostgreSQL"
    if shutil.which("pg_createcluster") is None or shutil.which("pg_ctlcluster") is None:
        return "needs postgresql-common's pg_createcluster and pg_ctlcluster"
    if os.geteuid() != 0:
        return "needs root to create, stop and start a PostgreSQL cluster"
    return None


def _version() -> str:
    """The newest installed PostgreSQL major version, as pg_createcluster names it."""
    return sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]


def ctl(action: str) -> None:
    """Start or stop the throwaway cluster (never the shared one)."""
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _version(), CLUSTER, action],
        check=True,
        capture_output=True,
    )


def ready() -> bool:
    return (
        subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(PORT)], check=False).returncode == 0
    )


def sql(statement: str, dbname: str = "taskq_outage") -> list[tuple[Any, ...]]:
    """Run one statement on the throwaway cluster over a fresh connection."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=PORT, user="postgres", dbname=dbname, autocommit=True, connect_timeout=5
    ) as conn:
        cursor = conn.execute(statement.encode())
        return cursor.fetchall() if cursor.description else []


def statuses() -> dict[str, int]:
    try:
        return dict(sql("SELECT status, count(*) FROM taskq_task GROUP BY status"))
    except Exception:  # the server is down or restarting
        return {}


def manage(*args: str) -> str:
    """Run a management command against the throwaway database."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(DATABASE_URL=URL),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def seen(log: Path, *markers: str) -> bool:
    text = log.read_text()
    return all(marker in text for marker in markers)


@pytest.fixture(scope="session")
def outage_cluster() -> Iterator[None]:
    """A dedicated PostgreSQL cluster this test may stop and start, made on first use."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    if not any(line.split()[:2] == [_version(), CLUSTER] for line in listed.splitlines()):
        subprocess.run(
            [
                "pg_createcluster",
                "--port",
                str(PORT),
                "--start-conf",
                "manual",  # never at boot: it exists for this test only
                _version(),
                CLUSTER,
                "--",
                "--auth=trust",
            ],
            check=True,
            capture_output=True,
        )
    if not ready():
        ctl("start")
    wait_until(ready, timeout=60)
    yield
    ctl("stop")


@pytest.mark.restarts_postgres
@pytest.mark.usefixtures("outage_cluster")
def test_a_worker_process_rides_out_a_postgresql_restart(start_worker: StartWorker) -> None:
    sql("DROP DATABASE IF EXISTS taskq_outage WITH (FORCE)", dbname="postgres")
    sql("CREATE DATABASE taskq_outage", dbname="postgres")
    manage("migrate", "--noinput")
    worker = start_worker(WORKERS, DATABASE_URL=URL)
    # Attempts to spare: an attempt cut off by the outage counts, and the task runs again.
    manage(
        "shell",
        "-c",
        "from taskq import options\n"
        "from tests.testapp import tasks\n"
        f"for i in range({BATCH}):\n"
        "    options(max_attempts=20).enqueue(tasks.slow_create_item, f'batch-{i}', 0.2)\n",
    )
    wait_until(lambda: statuses().get("succeeded", 0) >= WORKERS, timeout=60)

    ctl("stop")
    try:
        # Down until both kinds of thread have hit it: the dispatcher backs off, and a
        # running task fails to write and then fails to record that, so its lease must lapse.
        wait_until(lambda: seen(worker.log, "event=dispatch_error", "event=record_failed"), timeout=30)
        assert statuses().get("succeeded", 0) < BATCH, "the batch finished before the outage"
    finally:
        ctl("start")
    wait_until(ready, timeout=60)

    # Attempts cut off mid-write are recovered when their leases lapse, and run again.
    wait_until(lambda: statuses() == {"succeeded": BATCH}, timeout=LEASE * 10 + 60)
    names = {name for (name,) in sql("SELECT DISTINCT name FROM testapp_item")}
    assert names == {f"batch-{i}" for i in range(BATCH)}
    # The attempts the outage cut off were run again (at least once: some may have written
    # their item before the connection dropped, and then run a second time).
    assert sql("SELECT count(*) FROM taskq_task WHERE attempts > 1")[0][0] >= 1

    # No thread died: all of them are still there to run this many tasks at once.
    manage(
        "shell",
        "-c",
        "from taskq import options\n"
        "from tests.testapp import tasks\n"
        f"for _ in range({WORKERS}):\n"
        f"    options(max_attempts=1).enqueue(tasks.barrier, 'barrier', {WORKERS})\n",
    )
    wait_until(lambda: statuses() == {"succeeded": BATCH + WORKERS}, timeout=60)
    output = worker.stop()
    assert "Exception in thread" not in output
    assert "event=stop_timeout" not in output
