"""Unique tasks: one queued or running task per key, decided by a database constraint."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import taskq
from taskq import InvalidTask, enqueue, options
from taskq.immediate import IMMEDIATE
from taskq.models import Status, Task
from taskq.pool import Pool
from tests.helpers import subprocess_env, wait_until
from tests.testapp import tasks, unique_tasks
from tests.testapp.models import Item

ROOT = Path(__file__).resolve().parent.parent


def live(key: str) -> list[Task]:
    return list(Task.objects.filter(unique_key=key, status__in=[Status.QUEUED, Status.RUNNING]))


@pytest.mark.django_db
def test_a_second_enqueue_with_a_live_key_returns_the_first_task(
    django_assert_num_queries: Any,
) -> None:
    with django_assert_num_queries(1):
        first = options(unique_key="sync-user-42").enqueue(tasks.add, 1, 2)
    assert first.created is True
    assert first.unique_key == "sync-user-42"
    with django_assert_num_queries(2):  # the refused INSERT, then the read of the holder
        second = options(unique_key="sync-user-42").enqueue(tasks.add, 3, 4)
    assert second.created is False
    assert second.pk == first.pk
    assert second.args == [1, 2]
    assert Task.objects.count() == 1
    other = options(unique_key="sync-user-43").enqueue(tasks.add, 1, 2)
    assert other.created is True
    assert enqueue(tasks.add, 1, 2).created is True  # no key, no limit
    assert enqueue(tasks.add, 1, 2).created is True


@pytest.mark.django_db
def test_a_refused_enqueue_leaves_the_callers_transaction_usable() -> None:
    with transaction.atomic():
        first = options(unique_key="k").enqueue(tasks.add, 1, 2)
        item = Item.objects.create(name="before")
        assert options(unique_key="k").enqueue(tasks.add, 1, 2).pk == first.pk
        Item.objects.create(name="after")
        assert not connection.needs_rollback
    assert set(Item.objects.values_list("name", flat=True)) >= {item.name, "after"}


@pytest.mark.django_db
@pytest.mark.parametrize("finished", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_the_key_is_free_once_its_task_finishes(finished: Status) -> None:
    first = options(unique_key="k").enqueue(tasks.add, 1, 2)
    Task.objects.filter(pk=first.pk).update(status=Status.RUNNING)
    assert options(unique_key="k").enqueue(tasks.add, 1, 2).pk == first.pk
    Task.objects.filter(pk=first.pk).update(status=finished)
    second = options(unique_key="k").enqueue(tasks.add, 1, 2)
    assert second.created is True
    assert second.pk != first.pk
    assert [t.pk for t in live("k")] == [second.pk]


@pytest.mark.django_db
def test_a_task_queued_again_for_a_retry_keeps_its_key() -> None:
    first = options(unique_key="k").enqueue(tasks.add, 1, 2)
    Task.objects.filter(pk=first.pk).update(status=Status.QUEUED, attempts=1, error="boom")
    again = options(unique_key="k").enqueue(tasks.add, 1, 2)
    assert (again.pk, again.created) == (first.pk, False)


@pytest.mark.django_db
def test_the_database_refuses_a_second_live_row_with_a_key_whoever_writes_it() -> None:
    from django.db import IntegrityError

    first = options(unique_key="k").enqueue(tasks.add, 1, 2)
    other = enqueue(tasks.add, 1, 2)
    Task.objects.filter(pk=first.pk).update(status=Status.FAILED)
    Task.objects.filter(pk=other.pk).update(unique_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(pk=first.pk).update(status=Status.QUEUED)


@pytest.mark.django_db
def test_the_decorators_key_function_gets_the_calls_arguments() -> None:
    first = enqueue(unique_tasks.sync_user, 7, note="a")
    assert first.unique_key == "sync-user-7"
    again = enqueue(unique_tasks.sync_user, user_id=7, note="b")
    assert (again.pk, again.created) == (first.pk, False)
    assert enqueue(unique_tasks.sync_user, 8).created is True
    # A per-call key wins over the decorator's.
    assert options(unique_key="own").enqueue(unique_tasks.sync_user, 7).unique_key == "own"
    # A key function may return None: that call has no key.
    assert enqueue(unique_tasks.maybe_keyed, -1).unique_key is None
    assert enqueue(unique_tasks.maybe_keyed, -1).created is True
    assert enqueue(unique_tasks.maybe_keyed, 3).unique_key == "maybe-3"


@pytest.mark.django_db
def test_bad_unique_keys_are_refused_before_anything_is_stored() -> None:
    for bad in ["", "x" * 192, 42]:
        with pytest.raises(InvalidTask, match="unique_key must be a non-empty str"):
            options(unique_key=bad)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(InvalidTask, match="unique_key must be a non-empty str"):
        taskq.task(unique_key="")
    with pytest.raises(InvalidTask, match="it must return a str, or None"):
        enqueue(unique_tasks.badly_keyed, 1)
    assert options(unique_key="x" * 191).enqueue(tasks.add, 1, 2).created is True
    assert Task.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_enqueue_frees_the_key() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        options(unique_key="k").enqueue(tasks.add, 1, 2)
        raise RuntimeError("the view failed")
    assert not Task.objects.exists()
    task = options(unique_key="k").enqueue(tasks.add, 1, 2)
    assert task.created is True


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_keyed_enqueue_is_one_statement() -> None:
    def statements() -> list[str]:
        # Leave out the NOTIFY a process without a pool sends after the commit (PostgreSQL):
        # it tells other processes' pools, and is no part of the enqueue's own work.
        return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith("NOTIFY")]

    with CaptureQueriesContext(connection) as captured:
        assert options(unique_key="k").enqueue(tasks.add, 1, 2).created is True
    assert len(statements()) == 1
    with CaptureQueriesContext(connection) as captured:
        assert options(unique_key="k").enqueue(tasks.add, 1, 2).created is False
    assert len(statements()) == 2


@pytest.mark.django_db(transaction=True)
@override_settings(TASKQ_IMMEDIATE=True)
def test_immediate_mode_runs_the_task_once_and_frees_its_key() -> None:
    with transaction.atomic():
        first = options(unique_key="k").enqueue(tasks.create_item, "one")
        again = options(unique_key="k").enqueue(tasks.create_item, "two")
        assert (again.pk, again.created) == (first.pk, False)
    first.refresh_from_db()
    assert (first.status, first.worker) == (Status.SUCCEEDED, IMMEDIATE)
    assert list(Item.objects.values_list("name", flat=True)) == ["one"]
    later = options(unique_key="k").enqueue(tasks.create_item, "three")
    assert later.created is True
    later.refresh_from_db()
    assert later.status == Status.SUCCEEDED
    assert sorted(Item.objects.values_list("name", flat=True)) == ["one", "three"]


@pytest.mark.django_db(transaction=True)
def test_threads_racing_on_one_key_all_get_the_one_row() -> None:
    barrier = threading.Barrier(20)
    results: list[tuple[int, bool]] = []

    def call() -> None:
        try:
            barrier.wait(10)
            task = options(unique_key="raced").enqueue(tasks.add, 1, 2)
            results.append((task.pk, task.created))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 20
    [row] = live("raced")
    assert {pk for pk, _ in results} == {row.pk}
    assert sum(created for _, created in results) == 1


def race_in_processes(name: str, processes: int = 2, threads: int = 25) -> list[tuple[int, bool]]:
    """Enqueue sync_blocking(name) from ``threads`` threads in each of ``processes`` processes at once."""
    go = ROOT / f".unique-go-{name}"
    go.unlink(missing_ok=True)
    code = (
        "import django; django.setup(); from tests.testapp.unique_tasks import race; "
        f"race({str(go)!r}, {threads}, {name!r})"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        go.touch()
        results = []
        for child in children:
            out, err = child.communicate(timeout=90)
            assert child.returncode == 0, err
            results += [(pk, created) for pk, created in json.loads(out)]
        return results
    finally:
        go.unlink(missing_ok=True)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str) -> tuple[int, bool, int]:
    """POST to ``url``; return the task id, whether it was created, and the pid that answered."""
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as response:
        pk, created, pid = json.loads(response.read())
    return int(pk), bool(created), int(pid)


@contextmanager
def gunicorn(workers: int, threads: int) -> Iterator[str]:
    """Serve unique_tasks.wsgi() with gunicorn's threaded workers; yield its base URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
        "--bind", f"127.0.0.1:{port}", "tests.testapp.unique_tasks:wsgi()",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        pids: set[int] = set()

        def both_workers_answer() -> bool:
            # A worker answers with its pid, so the test knows both take requests before it starts.
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/pid", timeout=5) as response,
            ):
                pids.add(int(response.read()))
            return len(pids) == workers

        wait_until(both_workers_answer, timeout=60, interval=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def test_fifty_requests_across_two_gunicorn_workers_while_the_task_runs_all_get_the_running_task(
    make_pool: Callable[..., Pool],
) -> None:
    first = enqueue(unique_tasks.sync_blocking, "busy")
    make_pool(workers=1)
    wait_until(lambda: tasks.event("busy:started").is_set())
    try:
        with gunicorn(workers=2, threads=25) as url, ThreadPoolExecutor(50) as callers:
            results = list(callers.map(post, [f"{url}/busy"] * 50))
        [row] = live("blocking-busy")
    finally:
        tasks.event("busy").set()
    assert (row.pk, row.status) == (first.pk, Status.RUNNING)
    assert [(pk, created) for pk, created, _ in results] == [(first.pk, False)] * 50
    assert len({pid for *_, pid in results}) == 2, "both gunicorn workers should have answered"
    wait_until(lambda: Task.objects.get(pk=first.pk).status == Status.SUCCEEDED)
    assert live("blocking-busy") == []
    # The key is free again: the next call queues a new task (which runs at once, released).
    assert enqueue(unique_tasks.sync_blocking, "busy").created is True


@pytest.mark.django_db(transaction=True)
def test_fifty_enqueues_across_two_processes_racing_for_a_free_key_insert_one_row() -> None:
    results = race_in_processes("free")
    assert len(results) == 50
    [row] = live("blocking-free")
    assert Task.objects.filter(unique_key="blocking-free").count() == 1
    assert {pk for pk, _ in results} == {row.pk}
    assert sum(created for _, created in results) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite's transaction holds the write lock")
def test_a_holder_committed_after_the_callers_snapshot_is_still_found() -> None:
    holder: list[Task] = []

    def enqueue_elsewhere() -> None:
        try:
            holder.append(options(unique_key="late").enqueue(tasks.add, 1, 2))
        finally:
            connections.close_all()

    try:
        if connection.vendor == "mysql":
            # InnoDB's own default, which Django replaces with READ COMMITTED unless told otherwise.
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with transaction.atomic():
            # A read first, so under REPEATABLE READ the snapshot predates the holder.
            assert not Task.objects.exists()
            other = threading.Thread(target=enqueue_elsewhere)
            other.start()
            other.join(30)
            found = options(unique_key="late").enqueue(tasks.add, 3, 4)
    finally:
        connection.close()  # the next session starts at the configured isolation level again
    assert (found.pk, found.created) == (holder[0].pk, False)
    assert Task.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_claimed_keyed_task_holds_its_key_until_its_outcome_is_written() -> None:
    queued = options(unique_key="claimed").enqueue(tasks.add, 1, 2)
    [claimed] = Task.objects.claim("test:1:cafe", limit=5, lease=60)
    assert (claimed.pk, claimed.status, claimed.unique_live) == (queued.pk, Status.RUNNING, "claimed")
    assert options(unique_key="claimed").enqueue(tasks.add, 1, 2).pk == queued.pk
    assert claimed.set_succeeded(3)
    assert Task.objects.get(pk=queued.pk).unique_live is None
    assert options(unique_key="claimed").enqueue(tasks.add, 1, 2).created is True
