"""Claiming: the limit, concurrent claimers, and runners that claim their own next task."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models.signals import post_init

from taskq import enqueue, options
from taskq.features import features
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from taskq.signals import task_finished
from tests.helpers import wait_until
from tests.testapp import tasks

MakePool = Callable[..., Pool]
server_only = pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite has no sessions")
runners_claim = pytest.mark.skipif(
    "connection.vendor == 'mysql'",
    reason="on MariaDB only the dispatcher claims (see the README's limitations)",
)


def finished(*pks: int) -> bool:
    return Task.objects.filter(pk__in=pks).finished().count() == len(pks)


@pytest.mark.django_db
def test_a_claim_takes_no_more_than_its_limit() -> None:
    pks = [enqueue(tasks.add, i, i).pk for i in range(3)]
    [first] = Task.objects.claim("me", 1, 60)
    assert first.pk == pks[0]
    assert (first.status, first.worker, first.attempts, first.args) == (Status.RUNNING, "me", 1, [0, 0])
    assert Task.objects.queued().count() == 2
    rest = Task.objects.claim("me", 5, 60)
    assert [t.pk for t in rest] == pks[1:]
    assert Task.objects.claim("me", 5, 60) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_share_a_task() -> None:
    pks = {enqueue(tasks.add, i, i).pk for i in range(60)}
    start = threading.Barrier(4)
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        mine: list[int] = []
        try:
            start.wait(10)
            while batch := Task.objects.claim(name, 4, 60):
                assert len(batch) <= 4
                mine.extend(t.pk for t in batch)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            taken[name] = mine
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    claimed = [pk for mine in taken.values() for pk in mine]
    assert sorted(claimed) == sorted(pks)  # every task once, none twice
    for name, mine in taken.items():
        assert set(Task.objects.filter(pk__in=mine).values_list("worker", flat=True)) <= {name}


@runners_claim
def test_a_free_runner_claims_its_next_task_without_the_dispatcher(make_pool: MakePool) -> None:
    pool = make_pool(workers=1, poll_interval=60.0)
    gate = enqueue(tasks.block, "gate").pk
    wait_until(lambda: Task.objects.running().filter(pk=gate).exists())
    with transaction.atomic():
        rest = [enqueue(tasks.add, i, 1).pk for i in range(3)]
    # Hold the dispatcher between database calls: only the runner itself can claim now.
    assert pool.hold_for_fork()
    try:
        tasks.event("gate").set()
        wait_until(lambda: finished(gate, *rest))
    finally:
        pool.release_after_fork()
    assert [Task.objects.get(pk=pk).result for pk in rest] == [1, 2, 3]
    wait_until(lambda: pool.busy == 0)


@server_only
def test_back_to_back_jobs_still_get_a_fresh_session_each_at_conn_max_age_zero(
    make_pool: MakePool,
) -> None:
    with transaction.atomic():
        pks = [enqueue(tasks.backend_pid, "fresh").pk for _ in range(3)]
    make_pool(workers=1)
    wait_until(lambda: finished(*pks))
    assert len(set(tasks.SEEN["fresh"])) == 3


@runners_claim
def test_a_failed_claim_by_a_runner_is_logged_and_the_pool_recovers(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="taskq")
    table = Task._meta.db_table
    quote = connection.ops.quote_name
    moved = threading.Event()

    def move_the_table(sender: Any, task: Task, **kwargs: Any) -> None:
        # Runs in the runner thread after the outcome is saved, just before its own claim.
        if task.args == [0, 1] and not moved.is_set():
            with connections["default"].cursor() as cursor:
                cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_away')}")
            moved.set()

    task_finished.connect(move_the_table)
    try:
        pool = make_pool(workers=1)
        first = enqueue(tasks.add, 0, 1).pk
        wait_until(lambda: "event=claim_failed" in caplog.text)
    finally:
        task_finished.disconnect(move_the_table)
        if moved.wait(20):
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {quote(table + '_away')} RENAME TO {quote(table)}")
    assert Task.objects.get(pk=first).result == 1
    second = enqueue(tasks.add, 2, 3).pk
    wait_until(lambda: finished(second), timeout=40)
    assert Task.objects.get(pk=second).result == 5
    assert pool.alive
    wait_until(lambda: pool.busy == 0)


def test_runners_claim_only_where_one_statement_claims() -> None:
    # MariaDB's claim locks every row it scans until it commits: one claimer per process.
    assert features(connection).runners_claim is (connection.vendor != "mysql")


class ReadsFromAReplica:
    """A primary/replica router whose replica does not even exist: any read sent there fails."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "replica"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"


@pytest.mark.django_db
def test_a_claim_and_its_outcome_go_to_the_database_writes_go_to(settings: Any) -> None:
    pk = enqueue(tasks.add, 1, 2).pk
    settings.DATABASE_ROUTERS = ["tests.test_claims.ReadsFromAReplica"]
    [claimed] = Task.objects.claim("me", 1, 60)
    assert claimed.pk == pk
    # The outcome is a write as well.
    assert claimed.set_succeeded(3)
    settings.DATABASE_ROUTERS = []
    assert Task.objects.get(pk=pk).status == Status.SUCCEEDED


@pytest.mark.django_db
def test_a_claim_for_no_queues_claims_nothing() -> None:
    enqueue(tasks.add, 1, 2)
    assert Task.objects.claim("me", 5, 60, queues=[]) == []


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_fails_after_its_update_gives_the_rows_back() -> None:
    pk = enqueue(tasks.add, 1, 2).pk

    def refuse(sender: Any, instance: Task, **kwargs: Any) -> None:
        raise RuntimeError("a post_init receiver failed")

    post_init.connect(refuse, sender=Task)
    try:
        with pytest.raises(RuntimeError):
            Task.objects.claim("me", 5, 60)
    finally:
        post_init.disconnect(refuse, sender=Task)
    task = Task.objects.get(pk=pk)
    assert (task.status, task.attempts, task.started_at) == (Status.QUEUED, 0, None)


def test_a_slot_freed_by_a_failing_receiver_is_filled_without_a_poll(make_pool: MakePool) -> None:
    pool = make_pool(workers=1, poll_interval=60.0)
    gate = enqueue(tasks.block, "gate").pk
    wait_until(lambda: Task.objects.running().filter(pk=gate).exists())

    def fail(sender: Any, task: Task, **kwargs: Any) -> None:
        if task.pk == gate:
            raise RuntimeError("a task_finished receiver failed")

    task_finished.connect(fail)
    try:
        after = enqueue(tasks.add, 2, 2).pk  # every thread is busy: a backlog
        tasks.event("gate").set()
        # Sooner than the 60 s poll or the 15 s heartbeat: the failed thread woke the dispatcher.
        wait_until(lambda: finished(after), timeout=10)
    finally:
        task_finished.disconnect(fail)
    assert Task.objects.get(pk=gate).status == Status.SUCCEEDED
    wait_until(lambda: pool.busy == 0)


def test_an_immediate_retry_runs_without_a_poll(make_pool: MakePool) -> None:
    make_pool(workers=2, poll_interval=60.0)
    pk = options(max_attempts=3).enqueue(tasks.retry_in, 0).pk
    wait_until(lambda: finished(pk), timeout=20)
    task = Task.objects.get(pk=pk)
    assert (task.status, task.attempts) == (Status.FAILED, 3)


def test_a_commit_wakes_a_pool_started_by_hand(make_pool: MakePool) -> None:
    pool = make_pool(workers=1, poll_interval=60.0)
    wait_until(lambda: Worker.objects.filter(name=pool.name).exists())
    pk = enqueue(tasks.add, 20, 22).pk
    # Sooner than the 60 s poll or the 15 s heartbeat: the commit woke this pool.
    wait_until(lambda: finished(pk), timeout=10)
    assert Task.objects.get(pk=pk).result == 42
