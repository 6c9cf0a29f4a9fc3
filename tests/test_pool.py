from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from taskq import enqueue, process
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from taskq.signals import task_finished, task_started
from tests.helpers import other_sessions, wait_until
from tests.testapp import tasks
from tests.testapp.models import Item

MakePool = Callable[..., Pool]
server_only = pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite has no sessions")


def finished(*pks: int) -> bool:
    return Task.objects.filter(pk__in=pks).finished().count() == len(pks)


@pytest.fixture
def conn_max_age(request: pytest.FixtureRequest) -> Iterator[Callable[[int], None]]:
    """Set CONN_MAX_AGE for connections opened from now on, in every thread."""
    # DatabaseWrappers in every thread share this settings dict, so a change here
    # reaches the pool's threads when they next connect.
    original = connection.settings_dict["CONN_MAX_AGE"]

    def set_age(age: int) -> None:
        connection.settings_dict["CONN_MAX_AGE"] = age

    yield set_age
    connection.settings_dict["CONN_MAX_AGE"] = original


def test_ticket_9878_two_hundred_rows_and_no_leaked_sessions(make_pool: MakePool) -> None:
    pool = make_pool(workers=4)
    created = [enqueue(tasks.create_item, f"row-{i}").pk for i in range(200)]
    wait_until(lambda: finished(*created), timeout=60)
    assert Task.objects.succeeded().count() == 200
    assert Item.objects.count() == 200
    assert sorted(Item.objects.values_list("name", flat=True)) == sorted(f"row-{i}" for i in range(200))
    if connection.vendor != "sqlite":
        # CONN_MAX_AGE=0: an idle pool holds no session at all.
        wait_until(lambda: other_sessions() == 0, timeout=10)
    assert pool.stop()
    # The server reaps a closed session a moment after the client hangs up.
    wait_until(lambda: other_sessions() in (0, None), timeout=10)


@server_only
def test_sessions_return_to_zero_after_stop_with_persistent_connections(
    make_pool: MakePool, conn_max_age: Callable[[int], None]
) -> None:
    conn_max_age(60)
    pool = make_pool(workers=3)
    pks = [enqueue(tasks.create_item, f"p-{i}").pk for i in range(20)]
    wait_until(lambda: finished(*pks))
    # Persistent connections stay open while the pool lives: workers + dispatcher at most.
    assert other_sessions() <= 4  # type: ignore[operator]
    assert pool.stop()
    wait_until(lambda: other_sessions() == 0, timeout=10)


@server_only
def test_conn_max_age_reuses_one_session_per_worker(
    make_pool: MakePool, conn_max_age: Callable[[int], None]
) -> None:
    conn_max_age(60)
    make_pool(workers=1)
    first = enqueue(tasks.backend_pid, "reuse").pk
    wait_until(lambda: finished(first))
    second = enqueue(tasks.backend_pid, "reuse").pk
    wait_until(lambda: finished(second))
    assert len(set(tasks.SEEN["reuse"])) == 1


@server_only
def test_conn_max_age_zero_uses_a_fresh_session_per_job(make_pool: MakePool) -> None:
    make_pool(workers=1)
    for _ in range(2):
        pk = enqueue(tasks.backend_pid, "fresh").pk
        wait_until(lambda pk=pk: finished(pk))  # type: ignore[misc]
    assert len(set(tasks.SEEN["fresh"])) == 2


@server_only
def test_health_checks_replace_a_session_killed_between_jobs(
    make_pool: MakePool, conn_max_age: Callable[[int], None]
) -> None:
    conn_max_age(60)
    connection.settings_dict["CONN_HEALTH_CHECKS"] = True
    try:
        make_pool(workers=1)
        first = enqueue(tasks.backend_pid, "health").pk
        wait_until(lambda: finished(first))
        victim = tasks.SEEN["health"][0]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [victim])
            else:
                cursor.execute(f"KILL {int(victim)}")
        second = enqueue(tasks.backend_pid, "health").pk
        wait_until(lambda: finished(second))
        assert Task.objects.get(pk=second).status == Status.SUCCEEDED
        assert tasks.SEEN["health"][1] != victim
    finally:
        connection.settings_dict["CONN_HEALTH_CHECKS"] = False


def test_rolled_back_enqueue_never_runs(make_pool: MakePool) -> None:
    make_pool(workers=2)
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue(tasks.create_item, "ghost")
        raise RuntimeError("roll back")
    marker = enqueue(tasks.create_item, "real").pk
    wait_until(lambda: finished(marker))
    assert list(Item.objects.values_list("name", flat=True)) == ["real"]
    assert Task.objects.count() == 1


def test_commit_wakes_the_process_pool_without_waiting_for_a_poll(
    transactional_db: None, settings: Any
) -> None:
    settings.TASKQ_POLL_INTERVAL = 60.0
    settings.TASKQ_WORKERS = 1
    pool = process.start()
    try:
        wait_until(lambda: Worker.objects.filter(name=pool.name).exists())
        with transaction.atomic():
            pk = enqueue(tasks.add, 2, 2).pk
        # Far less than the 60 s poll: only the on_commit wake-up can explain it.
        wait_until(lambda: finished(pk), timeout=20)
        assert Task.objects.get(pk=pk).result == 4
    finally:
        assert process.stop()


def test_a_pool_claims_no_more_than_its_free_threads(make_pool: MakePool) -> None:
    first = make_pool(workers=2)
    pks = [enqueue(tasks.block, f"hold-{i}").pk for i in range(5)]
    wait_until(lambda: Task.objects.running().count() == 2)
    # The claim commits a moment before the pool counts it; wait for the count.
    wait_until(lambda: first.busy == 2)
    # A second process's pool can take the rest, because the first one did not hoard them.
    second = make_pool(workers=3)
    wait_until(lambda: Task.objects.running().count() == 5)
    assert {t.worker for t in Task.objects.all()} == {first.name, second.name}
    assert Task.objects.filter(worker=first.name).count() == 2
    for i in range(5):
        tasks.event(f"hold-{i}").set()
    wait_until(lambda: finished(*pks))


def test_priority_then_run_after_order_the_claims(make_pool: MakePool) -> None:
    gate = enqueue(tasks.block, "gate").pk
    low = enqueue(tasks.backend_pid, "order").pk
    from taskq import options

    high = options(priority=5).enqueue(tasks.backend_pid, "order").pk
    pool = make_pool(workers=1)
    wait_until(lambda: tasks.event("gate:started").is_set())
    tasks.event("gate").set()
    wait_until(lambda: finished(gate, low, high))
    order = list(Task.objects.filter(pk__in=[low, high]).order_by("started_at").values_list("pk", flat=True))
    assert order == [high, low]
    assert pool.alive


def test_raising_task_is_recorded_and_the_thread_lives_on(make_pool: MakePool) -> None:
    from taskq import options

    make_pool(workers=1)
    bad = options(max_attempts=1).enqueue(tasks.fail, "kaput").pk
    good = enqueue(tasks.add, 1, 2).pk
    wait_until(lambda: finished(bad, good))
    failed = Task.objects.get(pk=bad)
    assert failed.status == Status.FAILED
    assert failed.error == "ValueError: kaput"
    assert "Traceback (most recent call last)" in failed.traceback
    assert "raise ValueError(message)" in failed.traceback
    assert Task.objects.get(pk=good).result == 3


def test_non_json_result_fails_without_retry(make_pool: MakePool) -> None:
    make_pool(workers=1)
    pk = enqueue(tasks.not_json).pk
    wait_until(lambda: finished(pk))
    task = Task.objects.get(pk=pk)
    assert task.status == Status.FAILED
    assert task.attempts == 1
    assert "the return value is an object, which is not JSON" in task.error


def test_forged_rows_are_refused(make_pool: MakePool) -> None:
    tampered = enqueue(tasks.create_item, "harmless").pk
    Task.objects.filter(pk=tampered).update(args=["evil"])
    forged = Task.objects.create(path="tests.testapp.tasks.create_item", args=["forged"], signature="x").pk
    make_pool(workers=2)
    wait_until(lambda: finished(tampered, forged))
    for pk in (tampered, forged):
        task = Task.objects.get(pk=pk)
        assert task.status == Status.FAILED
        assert task.error.startswith("BadTaskSignature")
    assert not Item.objects.exists()


def test_dispatcher_survives_a_database_error(make_pool: MakePool, caplog: pytest.LogCaptureFixture) -> None:
    table = Task._meta.db_table
    quote = connection.ops.quote_name
    caplog.set_level(logging.ERROR, logger="taskq")
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_away')}")
    try:
        pool = make_pool(workers=1)
        wait_until(lambda: "event=tables_missing" in caplog.text)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(table + '_away')} RENAME TO {quote(table)}")
    pk = enqueue(tasks.add, 20, 22).pk
    wait_until(lambda: finished(pk), timeout=40)
    assert Task.objects.get(pk=pk).result == 42
    assert pool.alive


def test_signals_fire_in_the_worker_thread(make_pool: MakePool) -> None:
    seen: list[tuple[str, int, str]] = []

    def on_started(sender: Any, task: Task, **kwargs: Any) -> None:
        seen.append(("started", task.pk, threading.current_thread().name))

    def on_finished(sender: Any, task: Task, **kwargs: Any) -> None:
        seen.append(("finished", task.pk, task.status))

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        make_pool(workers=1)
        pk = enqueue(tasks.add, 1, 1).pk
        wait_until(lambda: len(seen) == 2)
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    assert seen[0][:2] == ("started", pk)
    assert seen[0][2].startswith("taskq-runner")
    assert seen[1] == ("finished", pk, Status.SUCCEEDED)


def test_stop_lets_a_running_task_finish_within_the_grace(make_pool: MakePool) -> None:
    pool = make_pool(workers=1)
    pk = enqueue(tasks.block, "graceful").pk
    wait_until(lambda: tasks.event("graceful:started").is_set())
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(pool.stop(timeout=10)))
    stopper.start()
    tasks.event("graceful").set()
    stopper.join(20)
    assert stopped == [True]
    assert Task.objects.get(pk=pk).status == Status.SUCCEEDED
    assert not Worker.objects.filter(name=pool.name).exists()


def test_a_task_outliving_the_grace_stays_running_for_recovery(make_pool: MakePool, settings: Any) -> None:
    settings.TASKQ_SHUTDOWN_GRACE = 0.1
    pool = make_pool(workers=1)
    pk = enqueue(tasks.block, "stubborn").pk
    wait_until(lambda: tasks.event("stubborn:started").is_set())
    assert pool.stop()
    # Still running under this pool's name: its lease will lapse and another pool will requeue it.
    assert Task.objects.get(pk=pk).status == Status.RUNNING
    tasks.event("stubborn").set()


def test_release_gives_back_unstarted_claims_without_counting_them(transactional_db: None) -> None:
    pk = enqueue(tasks.add, 1, 1).pk
    [claimed] = Task.objects.claim("me", 5, 60)
    assert claimed.pk == pk
    assert claimed.attempts == 1
    assert Task.objects.claim("other", 5, 60) == []
    assert Task.objects.release("someone-else", [pk]) == 0
    assert Task.objects.release("me", [pk]) == 1
    task = Task.objects.get(pk=pk)
    assert (task.status, task.attempts, task.started_at) == (Status.QUEUED, 0, None)
    assert Task.objects.release("me", []) == 0
    assert Task.objects.claim("me", 0, 60) == []


def test_pool_heartbeats_a_worker_row(make_pool: MakePool) -> None:
    pool = make_pool(workers=2, queues=["a", "b"])
    row = wait_until(lambda: Worker.objects.filter(name=pool.name).first())
    assert row is not None
    assert (row.threads, row.queues) == (2, ["a", "b"])
    assert str(row) == pool.name
    assert pool.stop()
    assert not Worker.objects.filter(name=pool.name).exists()


def test_starting_twice_and_stopping_an_unstarted_pool(transactional_db: None) -> None:
    pool = Pool(workers=1, poll_interval=0.05)
    assert pool.stop()
    with pool:
        assert pool.start() is pool
        assert pool.alive
    assert not pool.alive


def test_a_failing_connection_cleanup_does_not_end_the_dispatcher(
    make_pool: MakePool,
    conn_max_age: Callable[[int], None],
    django_db_blocker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # With a persistent connection open, close_old_connections() asks the connection for
    # its autocommit state; while database access is blocked (as pytest-django does after
    # a test) that raises, and the pool must log it and live on.
    conn_max_age(60)
    caplog.set_level(logging.ERROR, logger="taskq")
    pool = make_pool(workers=1)
    first = enqueue(tasks.add, 1, 1).pk
    wait_until(lambda: finished(first))
    with django_db_blocker.block():
        wait_until(lambda: "event=close_failed" in caplog.text)
    pk = enqueue(tasks.add, 2, 3).pk
    wait_until(lambda: finished(pk), timeout=40)
    assert Task.objects.get(pk=pk).result == 5
    assert pool.alive
