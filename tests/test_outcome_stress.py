"""Under connection pressure a worker process runs each task once per attempt, and every task finishes.

Two hostile setups from real deployments: a database role allowed fewer connections than
the pool has threads, and a server that keeps killing the pool's sessions. Each task counts
its calls in a file the test reads, not in anything taskq writes.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from taskq import options
from taskq.models import FINISHED, Status, Task
from tests.helpers import database_url, subprocess_env, wait_until
from tests.testapp import outcome_tasks

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
ROLE = "taskq_limited"


def _server() -> str:
    if connection.vendor not in {"postgresql", "mysql"}:
        pytest.skip("SQLite has no roles, connection limits or sessions to kill")
    return connection.vendor


@pytest.fixture
def limited_role() -> Iterator[str]:
    """A login role allowed 8 connections to the test database; a DATABASE_URL that uses it."""
    vendor = _server()
    name = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"DROP ROLE IF EXISTS {ROLE}")
            cursor.execute(f"CREATE ROLE {ROLE} LOGIN CONNECTION LIMIT 8")
            cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}")
            cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
        else:
            cursor.execute(f"DROP USER IF EXISTS '{ROLE}'@'%'")
            cursor.execute(f"CREATE USER '{ROLE}'@'%' WITH MAX_USER_CONNECTIONS 8")
            cursor.execute(f"GRANT ALL ON `{name}`.* TO '{ROLE}'@'%'")
    base = database_url()
    scheme, rest = base.split("://", 1)
    url = f"{scheme}://{ROLE}@{rest.split('@', 1)[1]}"
    try:
        yield url
    finally:
        _kill_sessions()
        with connection.cursor() as cursor:
            if vendor == "postgresql":
                cursor.execute(f"DROP OWNED BY {ROLE}")
                cursor.execute(f"DROP ROLE IF EXISTS {ROLE}")
            else:
                cursor.execute(f"DROP USER IF EXISTS '{ROLE}'@'%'")


def _kill_sessions() -> int:
    """Kill every session of the limited role; return how many."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s", [ROLE]
            )
            return int(cursor.fetchone()[0])
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", [ROLE])
        killed = 0
        for (pid,) in cursor.fetchall():
            try:
                cursor.execute(f"KILL CONNECTION {int(pid)}")
                killed += 1
            except Exception:  # the session ended on its own in between
                pass
        return killed


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def start(procs: list[subprocess.Popen[bytes]], url: str, log: Path, workers: int, **env: str) -> None:
    with log.open("wb") as out:
        procs.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "taskq_worker", "--workers", str(workers)],
                cwd=ROOT,
                env=subprocess_env(DATABASE_URL=url, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )


def wait_all_finished(tasks: list[Task], log: Path, timeout: float) -> None:
    try:
        wait_until(lambda: Task.objects.filter(status__in=FINISHED).count() == len(tasks), timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()[-4000:]}") from None


def assert_each_ran_once_per_attempt(tasks: list[Task], calls_file: Path, log: Path) -> None:
    calls = (
        collections.Counter(calls_file.read_text().split()) if calls_file.exists() else collections.Counter()
    )
    for task in tasks:
        task.refresh_from_db()
        assert task.status == Status.SUCCEEDED, (task.pk, task.status, task.error, log.read_text()[-3000:])
        # An attempt lost before its call started (its claim's answer never arrived) is
        # recovered and counted; every other attempt called the function exactly once.
        started = [e for e in task.history if e["outcome"] != "lost"]
        outcomes = [(e["attempt"], e["outcome"], e["error"][:120]) for e in task.history]
        about = [line for line in log.read_text().splitlines() if f"task={task.pk} " in line]
        assert calls[task.args[1]] == len(started) == 1, (task.pk, calls[task.args[1]], outcomes, about[-5:])


# A pool that cannot connect backs off (up to 30 s), so on a loaded machine this can take minutes.
@pytest.mark.timeout(600)
def test_a_role_with_fewer_connections_than_threads_runs_each_task_once(
    limited_role: str, worker_process: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    calls_file, log = tmp_path / "calls", tmp_path / "worker.log"
    tasks = [
        options(max_attempts=3).enqueue(outcome_tasks.counted, str(calls_file), f"k{i}") for i in range(40)
    ]
    start(worker_process, limited_role, log, workers=30)
    wait_all_finished(tasks, log, timeout=240)
    assert_each_ran_once_per_attempt(tasks, calls_file, log)


@pytest.mark.timeout(600)
def test_sessions_killed_in_a_loop_never_run_a_task_twice(
    limited_role: str, worker_process: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    calls_file, log = tmp_path / "calls", tmp_path / "worker.log"
    tasks = [
        options(max_attempts=5).enqueue(outcome_tasks.counted, str(calls_file), f"k{i}") for i in range(200)
    ]
    # Persistent sessions, so the loop finds them between jobs too and each kill breaks the
    # next claim, heartbeat or outcome that was going to use one.
    start(worker_process, f"{limited_role}?conn_max_age=60", log, workers=4, TASKQ_TEST_LEASE="4")
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        from django.db import connections

        try:
            while not stop.wait(0.1):
                kills[0] += _kill_sessions()
        finally:
            connections.close_all()

    thread = threading.Thread(target=killer, name="test-killer")
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            kills[0] < 10 or Task.objects.filter(status__in=FINISHED).count() < 150
        ):
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    # The killing has stopped: whatever it stranded is recovered within a lease or two.
    wait_all_finished(tasks, log, timeout=240)
    assert kills[0] > 10, "the loop should have killed sessions while tasks ran"
    assert_each_ran_once_per_attempt(tasks, calls_file, log)
