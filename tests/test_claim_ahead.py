"""Rows a runner claims ahead while a backlog lasts: used, kept alive, cancellable, given back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction  # noqa: F401 - the skipif condition names connection

from taskq import enqueue, options
from taskq.models import Status, Task
from taskq.pool import Pool
from tests.helpers import wait_until
from tests.testapp import tasks

MakePool = Callable[..., Pool]

pytestmark = pytest.mark.skipif(
    "connection.vendor == 'mysql'",
    reason="on MariaDB only the dispatcher claims, so no runner claims ahead",
)


def claim_behind_a_gate(
    pool: Pool, queue_rows: Callable[[], list[int]], first: str, ahead: Callable[[list[int]], list[int]]
) -> tuple[int, list[int]]:
    """Queue rows behind a running gate task, then open it with only the runner free to claim.

    Once the task named ``first`` has started, checks that the runner claimed ``ahead(pks)``
    ahead, while the dispatcher is still held; returns the gate's pk and the rows'.
    """
    gate = enqueue(tasks.block, "gate").pk
    wait_until(lambda: tasks.event("gate:started").is_set())
    with transaction.atomic():
        pks = queue_rows()
    # The dispatcher, told of the commit with its one thread busy, leaves the rows to that thread.
    wait_until(lambda: pool.runners.backlog)
    assert pool.hold_for_fork()
    try:
        tasks.event("gate").set()
        wait_until(lambda: tasks.event(f"{first}:started").is_set())
        assert pool.runners.waiting_ahead() == ahead(pks)
    finally:
        pool.release_after_fork()
    return gate, pks


@pytest.fixture
def stashed(make_pool: MakePool, settings: Any) -> Iterator[tuple[Pool, list[int]]]:
    """A one-thread pool running ``b0`` with ``b1`` and ``b2`` claimed ahead by its runner."""
    settings.TASKQ_CLAIM_AHEAD = 2
    # A heartbeat, which renews leases and picks up cancel requests, every 0.75 s.
    settings.TASKQ_LEASE_SECONDS = 3.0
    pool = make_pool(workers=1, poll_interval=60.0)
    # One claim takes all three: the thread's next task and two rows ahead.
    queue = lambda: [enqueue(tasks.block, f"b{i}").pk for i in range(3)]  # noqa: E731
    gate, pks = claim_behind_a_gate(pool, queue, "b0", ahead=lambda pks: pks[1:])
    yield pool, pks
    for i in range(3):
        tasks.event(f"b{i}").set()
    wait_until(lambda: Task.objects.filter(pk__in=[gate, *pks], status=Status.RUNNING).count() == 0)


def test_rows_claimed_ahead_run_in_order_on_the_next_free_thread(stashed: tuple[Pool, list[int]]) -> None:
    pool, pks = stashed
    rows = Task.objects.filter(pk__in=pks)
    assert {(t.status, t.worker, t.attempts) for t in rows} == {(Status.RUNNING, pool.name, 1)}
    assert pool.busy == 3  # the running task and the two waiting for a thread
    tasks.event("b0").set()
    wait_until(lambda: tasks.event("b1:started").is_set())
    assert pool.runners.waiting_ahead() == pks[2:]
    tasks.event("b1").set()
    tasks.event("b2").set()
    wait_until(lambda: rows.filter(status=Status.SUCCEEDED).count() == 3)
    assert [t.attempts for t in rows] == [1, 1, 1]
    wait_until(lambda: pool.busy == 0)


def test_the_heartbeat_renews_the_leases_of_rows_claimed_ahead(stashed: tuple[Pool, list[int]]) -> None:
    _, pks = stashed
    claimed = Task.objects.get(pk=pks[2]).lease_expires_at
    assert claimed is not None
    # Past the lease its claim gave it, while the task before it still runs.
    later = claimed + timedelta(seconds=3)
    wait_until(lambda: Task.objects.filter(pk=pks[2], lease_expires_at__gt=later).exists())
    for i in range(3):
        tasks.event(f"b{i}").set()
    rows = Task.objects.filter(pk__in=pks)
    wait_until(lambda: rows.filter(status=Status.SUCCEEDED).count() == 3)
    # Never recovered as lost, so never run twice.
    assert [(t.attempts, [e["outcome"] for e in t.history]) for t in rows] == [(1, ["succeeded"])] * 3


def test_a_row_claimed_ahead_can_be_cancelled_before_it_starts(stashed: tuple[Pool, list[int]]) -> None:
    pool, pks = stashed
    done = Task.objects.filter(pk=pks[1]).cancel()
    assert done.stopping == 1  # claimed, so asked to stop rather than cancelled outright
    wait_until(lambda: Task.objects.get(pk=pks[1]).status == Status.CANCELLED)
    assert pool.runners.waiting_ahead() == pks[2:]
    cancelled = Task.objects.get(pk=pks[1])
    assert not tasks.event("b1:started").is_set()
    assert cancelled.error == "Cancelled before a thread started it"
    assert [e["outcome"] for e in cancelled.history] == ["cancelled"]
    tasks.event("b0").set()
    wait_until(lambda: tasks.event("b2:started").is_set())
    tasks.event("b2").set()
    wait_until(lambda: Task.objects.get(pk=pks[2]).status == Status.SUCCEEDED)
    assert not tasks.event("b1:started").is_set()


def test_stopping_gives_back_rows_claimed_ahead_without_counting_an_attempt(
    stashed: tuple[Pool, list[int]], settings: Any
) -> None:
    pool, pks = stashed
    settings.TASKQ_SHUTDOWN_GRACE = 0.1
    assert pool.stop()
    for pk in pks[1:]:
        task = Task.objects.get(pk=pk)
        assert (task.status, task.attempts, task.started_at) == (Status.QUEUED, 0, None)
    assert not pool.runners.ahead
    # b0 outlived the grace; its thread still records it once it returns.
    assert Task.objects.get(pk=pks[0]).status == Status.RUNNING
    tasks.event("b0").set()
    wait_until(lambda: Task.objects.get(pk=pks[0]).status == Status.SUCCEEDED)


def test_a_thread_freed_by_a_timeout_takes_the_rows_claimed_ahead(make_pool: MakePool, settings: Any) -> None:
    settings.TASKQ_CLAIM_AHEAD = 2
    pool = make_pool(workers=1, poll_interval=60.0)

    def queue_rows() -> list[int]:
        hung = options(timeout=0.5, max_attempts=1).enqueue(tasks.block, "hung").pk
        return [hung, *(enqueue(tasks.add, i, 1).pk for i in range(2))]

    gate, [hung, *rest] = claim_behind_a_gate(pool, queue_rows, "hung", ahead=lambda pks: pks[1:])
    # The dispatcher abandons the hung thread and starts another, whose free slot the rows
    # claimed ahead fill before any new claim.
    rows = Task.objects.filter(pk__in=rest)
    wait_until(lambda: rows.filter(status=Status.SUCCEEDED).count() == 2)
    assert [t.attempts for t in rows] == [1, 1]
    assert Task.objects.get(pk=hung).error.startswith("TaskTimeout")
    tasks.event("hung").set()
    wait_until(lambda: pool.abandoned_threads == 0)
    assert Task.objects.get(pk=gate).status == Status.SUCCEEDED


def test_claim_ahead_zero_claims_one_row_at_a_time(make_pool: MakePool, settings: Any) -> None:
    settings.TASKQ_CLAIM_AHEAD = 0
    pool = make_pool(workers=1, poll_interval=60.0)
    queue = lambda: [enqueue(tasks.block, f"b{i}").pk for i in range(2)]  # noqa: E731
    gate, pks = claim_behind_a_gate(pool, queue, "b0", ahead=lambda pks: [])
    assert Task.objects.get(pk=pks[1]).status == Status.QUEUED
    tasks.event("b0").set()
    tasks.event("b1").set()
    wait_until(lambda: Task.objects.filter(pk__in=[gate, *pks], status=Status.SUCCEEDED).count() == 3)
