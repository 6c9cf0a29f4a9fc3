"""Cross-process wake-ups: who listens (taskq.listen's rule), who notifies, and that a notify wakes a pool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test import override_settings

from taskq import enqueue, listen, process
from taskq.listen import Mode
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from tests import processes
from tests.helpers import other_sessions, subprocess_env, wait_until
from tests.testapp import tasks

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
# Far beyond the worker settings' poll and heartbeat (tests/listen_settings.py and the
# overrides below) are 60 s and more, so a pickup within this came from a notify.
WOKEN_WITHIN = 15.0
SLOW_POLL = {"TASKQ_POLL_INTERVAL": 60.0, "TASKQ_LEASE_SECONDS": 600.0}


def wrapper(**changes: Any) -> Any:
    """A real, unconnected connection wrapper for the default database with ``changes`` to its settings."""
    conn = connections.create_connection("default")
    conn.settings_dict = {**conn.settings_dict, **changes}
    return conn


def enqueue_in_another_process(*args: Any) -> int:
    """Enqueue tasks.add(*args) from a fresh process that runs no pool; return the task's id."""
    code = (
        "import django; django.setup(); import taskq; from tests.testapp import tasks; "
        f"print(taskq.enqueue(tasks.add, *{args!r}).pk)"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.fixture
def raw_listener() -> Iterator[psycopg.Connection[Any]]:
    """A psycopg session of the test's own that LISTENs on taskq's channel."""
    params = connection.get_connection_params()
    conn = psycopg.connect(**params, autocommit=True)
    conn.execute(f"LISTEN {listen.CHANNEL}")
    try:
        yield conn
    finally:
        conn.close()


def received(conn: psycopg.Connection[Any]) -> int:
    return sum(1 for _ in conn.notifies(timeout=0.5))


# Who listens ---------------------------------------------------------------


def test_no_pool_listens_on_sqlite_or_mariadb_even_when_asked(db: None) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL listens")
    with override_settings(TASKQ_LISTEN=True):
        assert listen.choose(wrapper(CONN_MAX_AGE=60), worker_process=True) is Mode.OFF


@postgres_only
@pytest.mark.parametrize(
    ("setting", "age", "pool", "worker_process", "expected"),
    [
        # A web process at age 0 keeps no idle session, so it polls.
        (None, 0, False, False, Mode.OFF),
        # Persistent connections: the dispatcher's own session listens, adding none.
        (None, 60, False, False, Mode.ON),
        (None, None, False, False, Mode.ON),
        # A worker process keeps its dispatcher's session (or pool slot) for it.
        (None, 0, False, True, Mode.ON),
        (None, 0, True, True, Mode.ON),
        # A web process on Django's pool holds no slot while idle.
        (None, 0, True, False, Mode.OFF),
        (True, 0, False, False, Mode.ON),
        (False, 60, False, True, Mode.OFF),
    ],
)
def test_the_rule_decides_who_listens_and_on_which_session(
    db: None, setting: bool | None, age: int | None, pool: bool, worker_process: bool, expected: Mode
) -> None:
    options = {"pool": {"min_size": 1, "max_size": 2}} if pool else {}
    with override_settings(TASKQ_LISTEN=setting):
        chosen = listen.choose(wrapper(CONN_MAX_AGE=age, OPTIONS=options), worker_process)
    assert chosen is expected


def test_only_taskq_worker_counts_as_a_worker_process() -> None:
    assert process.serving_worker(["manage.py", "taskq_worker", "--workers", "2"])
    assert process.serving_worker(["/venv/lib/django/__main__.py", "taskq_worker"])
    assert not process.serving_worker(["manage.py", "runserver"])
    assert not process.serving_worker(["gunicorn", "taskq_worker"])
    assert not process.serving_worker([])


@postgres_only
def test_a_web_processs_pool_at_age_0_keeps_no_listening_session(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(workers=2)
    wait_until(lambda: Worker.objects.filter(name=pool.name).exists())
    wait_until(lambda: pool._listener is not None and pool._listener.mode is Mode.OFF)
    wait_until(lambda: other_sessions() == 0)


# Who notifies --------------------------------------------------------------


@postgres_only
def test_an_enqueue_from_a_process_without_a_pool_notifies_once_committed(
    transactional_db: None, raw_listener: psycopg.Connection[Any]
) -> None:
    with transaction.atomic():
        enqueue(tasks.add, 1, 1)
        assert received(raw_listener) == 0
    assert received(raw_listener) == 1


@postgres_only
def test_a_rolled_back_enqueue_does_not_notify(
    transactional_db: None, raw_listener: psycopg.Connection[Any]
) -> None:
    with transaction.atomic():
        enqueue(tasks.add, 1, 1)
        transaction.set_rollback(True)
    assert received(raw_listener) == 0


@postgres_only
def test_a_process_that_runs_a_pool_wakes_it_and_notifies_nobody(
    make_pool: Callable[..., Pool], raw_listener: psycopg.Connection[Any]
) -> None:
    make_pool(workers=2)
    task = enqueue(tasks.add, 2, 2)
    wait_until(lambda: Task.objects.get(pk=task.pk).status == Status.SUCCEEDED)
    assert received(raw_listener) == 0


@postgres_only
def test_listen_false_sends_no_notify(transactional_db: None, raw_listener: psycopg.Connection[Any]) -> None:
    with override_settings(TASKQ_LISTEN=False):
        enqueue(tasks.add, 1, 1)
    assert received(raw_listener) == 0


# A notify wakes a pool -----------------------------------------------------


@postgres_only
def test_a_worker_process_listens_on_one_session_and_a_notify_from_another_process_wakes_it(
    transactional_db: None,
) -> None:
    with processes.started("taskq_worker", "--workers", "2", "--settings", "tests.listen_settings") as worker:
        wait_until(lambda: Worker.objects.exists(), timeout=30)
        # Idle at CONN_MAX_AGE=0, it keeps its dispatcher's session, which listens, and no other.
        wait_until(lambda: other_sessions() == 1)
        pk = enqueue_in_another_process(20, 22)
        wait_until(lambda: Task.objects.get(pk=pk).status == Status.SUCCEEDED, timeout=WOKEN_WITHIN)
        assert Task.objects.get(pk=pk).result == 42
        wait_until(lambda: other_sessions() == 1)
        worker.terminate()
        assert worker.wait(30) == 0
    wait_until(lambda: other_sessions() == 0)


@postgres_only
def test_a_pool_on_persistent_connections_listens_on_its_dispatchers_session(transactional_db: None) -> None:
    workers = 2
    original = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 60
    try:
        with override_settings(**SLOW_POLL):
            pool = Pool(workers=workers, poll_interval=60.0).start()
            try:
                wait_until(lambda: pool._listener is not None and pool._listener.mode is Mode.ON)
                wait_until(lambda: Worker.objects.filter(name=pool.name).exists())
                pk = enqueue_in_another_process(1, 2)
                wait_until(lambda: Task.objects.get(pk=pk).status == Status.SUCCEEDED, timeout=WOKEN_WITHIN)
                # The listener took no session beyond the dispatcher's and the runners'.
                assert (other_sessions() or 0) <= workers + 1
            finally:
                assert pool.stop()
        wait_until(lambda: other_sessions() == 0)
    finally:
        connections.settings["default"]["CONN_MAX_AGE"] = original


# Without LISTEN: the adaptive poll -------------------------------------------


def test_a_pool_that_cannot_listen_polls_soon_after_a_round_that_found_work(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its poll interval is 60 s, but it has just claimed a task, so it looks again within
    # a few seconds: a task from another process is not left for the full interval.
    first = enqueue(tasks.add, 1, 1)
    monkeypatch.setenv("TASKQ_TEST_LISTEN", "0")
    with processes.started("taskq_worker", "--workers", "2", "--settings", "tests.listen_settings") as worker:
        wait_until(lambda: Task.objects.get(pk=first.pk).status == Status.SUCCEEDED, timeout=30)
        pk = enqueue_in_another_process(3, 4)
        wait_until(lambda: Task.objects.get(pk=pk).status == Status.SUCCEEDED, timeout=WOKEN_WITHIN)
        worker.terminate()
        assert worker.wait(30) == 0
