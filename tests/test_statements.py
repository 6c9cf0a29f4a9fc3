"""The hot path's prebuilt SQL reads and writes exactly what the ORM would."""

from __future__ import annotations

import gc
import threading
import weakref
from datetime import timedelta

import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from taskq import enqueue, options
from taskq.features import features
from taskq.models import Status, Task
from taskq.statements import _build_claim
from tests.testapp import tasks


@pytest.mark.django_db
def test_claims_of_different_shapes_each_take_only_their_queues() -> None:
    a = options(queue="a").enqueue(tasks.add, 1, 1).pk
    b = options(queue="b").enqueue(tasks.add, 2, 2).pk
    c = options(queue="c").enqueue(tasks.add, 3, 3).pk
    # One queue, then two, then one again: each shape has its own statement.
    assert [t.pk for t in Task.objects.claim("me", 5, 60, queues=["c"])] == [c]
    assert [t.pk for t in Task.objects.claim("me", 5, 60, queues=["a", "b"])] == [a, b]
    assert Task.objects.claim("me", 5, 60, queues=["a"]) == []


@pytest.mark.django_db
def test_the_database_picks_by_priority_then_run_after_then_enqueue_time() -> None:
    now = timezone.now()
    late = options(priority=0).enqueue(tasks.add, 0, 0)
    Task.objects.filter(pk=late.pk).update(run_after=now - timedelta(seconds=1), enqueued_at=now)
    early = options(priority=0).enqueue(tasks.add, 0, 1)
    Task.objects.filter(pk=early.pk).update(run_after=now - timedelta(seconds=2), enqueued_at=now)
    urgent = options(priority=5).enqueue(tasks.add, 0, 2)
    # Ties on run_after fall to the enqueue time.
    older = options(priority=0).enqueue(tasks.add, 0, 3)
    Task.objects.filter(pk=older.pk).update(
        run_after=now - timedelta(seconds=1), enqueued_at=now - timedelta(seconds=9)
    )
    # One at a time, so the ORDER BY inside the statement chooses, not a sort afterwards.
    order = [Task.objects.claim("me", 1, 60)[0].pk for _ in range(4)]
    assert order == [urgent.pk, early.pk, older.pk, late.pk]


@pytest.mark.django_db
def test_a_claimed_row_reads_back_as_the_orm_reads_it() -> None:
    task = options(queue="q", max_attempts=3, timeout=2.5).enqueue(tasks.echo, {"k": [1, "x"]}, flag=True)
    [claimed] = Task.objects.claim("me", 1, 60)
    fresh = Task.objects.get(pk=task.pk)
    for field in Task._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(fresh, field.attname), field.name
    assert claimed.args == [{"k": [1, "x"]}]
    assert claimed.kwargs == {"flag": True}
    assert claimed.started_at is not None
    assert timezone.is_aware(claimed.started_at)
    assert not claimed._state.adding
    assert claimed._state.db == "default"


@pytest.mark.django_db
@pytest.mark.parametrize("result", [None, 0, "", [], {"nested": [1, None, "two"]}])
def test_an_outcome_is_stored_as_update_would_store_it(result: object) -> None:
    enqueue(tasks.add, 1, 2)
    [task] = Task.objects.claim("me", 1, 60)
    assert task.set_succeeded(result)
    row = Task.objects.get(pk=task.pk)
    assert (row.status, row.result, row.finished_at) == (Status.SUCCEEDED, result, task.finished_at)
    # None is SQL NULL, as QuerySet.update() writes it, not JSON null.
    assert Task.objects.filter(pk=task.pk, result__isnull=True).exists() is (result is None)
    # Written once: the same attempt cannot record a second outcome.
    assert not task.set_failed("late")


@pytest.mark.django_db(transaction=True)
def test_a_finished_thread_leaves_no_connection_behind_in_the_statement_cache() -> None:
    enqueue(tasks.add, 1, 2)
    wrapper: list[weakref.ref[BaseDatabaseWrapper]] = []

    def claim_and_finish() -> None:
        try:
            [task] = Task.objects.claim("me", 1, 60)
            task.set_succeeded(3)
            wrapper.append(weakref.ref(connections["default"]))
        finally:
            connections.close_all()

    thread = threading.Thread(target=claim_and_finish)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert wrapper
    gc.collect()
    assert wrapper[0]() is None


@pytest.mark.django_db
def test_a_claim_passes_over_delayed_tasks_of_any_priority() -> None:
    # The claim first counts the due tasks, then scans in priority order for that many.
    options(priority=9, delay=3600).enqueue(tasks.add, 1, 1)
    assert Task.objects.claim("me", 5, 60) == []
    due = options(priority=0).enqueue(tasks.add, 2, 2)
    options(priority=9, delay=3600).enqueue(tasks.add, 3, 3)
    assert [t.pk for t in Task.objects.claim("me", 5, 60)] == [due.pk]
    assert Task.objects.claim("me", 5, 60) == []
    assert Task.objects.queued().count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("queues", [None, ["a"], ["a", "b"]])
def test_a_claim_takes_every_due_task_up_to_its_limit_among_delayed_ones(queues: list[str] | None) -> None:
    # The claim's LIMIT is the number of due tasks (at most the limit) in the queues asked for:
    # it must count every one of them, past the delayed tasks of a higher priority that the
    # scan meets first, and never more than the limit.
    for queue in ("a", "b"):
        options(queue=queue, priority=9, delay=3600).enqueue(tasks.add, 0, 0)
    due = [options(queue=q).enqueue(tasks.add, i, i).pk for i, q in enumerate("aabba")]
    wanted = [pk for pk, q in zip(due, "aabba", strict=True) if queues is None or q in queues]
    assert sorted(t.pk for t in Task.objects.claim("me", 10, 60, queues=queues)) == wanted
    assert Task.objects.claim("me", 10, 60, queues=queues) == []
    options(queue="a").enqueue(tasks.add, 9, 9)
    options(queue="a").enqueue(tasks.add, 9, 9)
    assert len(Task.objects.claim("me", 1, 60, queues=queues)) == 1
    assert len(Task.objects.claim("me", 5, 60, queues=queues)) == 1


def test_the_claims_count_of_due_tasks_filters_as_its_scan_does() -> None:
    # A count that ignored the queues would still claim the right rows, only let the scan
    # walk on through the other queues' rows: so check the statement itself.
    conn = connections["default"]
    if not features(conn).returning_claim:
        pytest.skip("MariaDB counts with the ORM's due()")
    queue = f"{conn.ops.quote_name('queue')} IN (%s, %s)"
    due = f"{conn.ops.quote_name('run_after')} <= %s"
    sql = _build_claim(Task, conn, 8, 2).sql
    assert sql.count(queue) == sql.count(due) == 2
