"""The queue's side of a pool: claiming due tasks, renewing and recovering leases, giving tasks back.

Each function takes the task queryset it works on, and builds rows through ``qs.model``, so
that models.py can offer them as ``TaskQuerySet`` methods without this module importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.db.models import F
from django.utils import timezone

from taskq.features import features
from taskq.statements import ClaimedButUnreadable, claim_returning
from taskq.states import WORKER_LOST, Status, appended, lost_entry

TaskQS = models.QuerySet[Any]


def claim(qs: TaskQS, pool: str, limit: int, lease: float, queues: Sequence[str] | None) -> list[Any]:
    """Mark up to ``limit`` due tasks as running by ``pool`` and return them, in due order."""
    if limit <= 0 or (queues is not None and not queues):
        return []
    now = timezone.now()
    expires = now + timedelta(seconds=lease)
    # A claim writes, so it goes where the router sends writes, never to a replica:
    # the same switch QuerySet.update() and select_for_update() flip.
    qs = qs.all()
    qs._for_write = True  # type: ignore[attr-defined]  # private in django-stubs
    if not features(connections[qs.db]).returning_claim:
        return _claim_locking(qs, pool, limit, now, queues, expires)
    try:
        tasks = claim_returning(
            qs.model, qs.db, pool, limit, now, expires, queues, Status.QUEUED, Status.RUNNING
        )
    except ClaimedButUnreadable as exc:
        # The claim has committed: give the rows back rather than strand them as running
        # until their leases lapse, which would count an attempt never made.
        release(qs, pool, exc.pks)
        raise exc.__cause__ or exc from None
    except DatabaseError:
        _release_unanswered(qs, pool, now)
        raise
    # RETURNING follows no ORDER BY: put the batch back in the order due() chose.
    tasks.sort(key=lambda t: (-t.priority, t.run_after, t.enqueued_at, t.pk))
    return tasks


def _release_unanswered(qs: TaskQS, pool: str, now: datetime) -> None:
    """Give back what a claim whose answer was lost may have committed, on a fresh connection."""
    conn = connections[qs.db]
    if conn.in_atomic_block:
        return  # the caller's transaction rolls the claim back with it
    # The connection dropped after the UPDATE committed: its rows carry this pool's name
    # and this claim's time, and nothing else does.
    try:
        conn.close()
        qs.filter(status=Status.RUNNING, worker=pool, started_at=now).update(
            status=Status.QUEUED, attempts=F("attempts") - 1, started_at=None, lease_expires_at=None
        )
    except DatabaseError:
        pass  # the database is still away: the rows' leases lapse and recovery requeues them


def _due(qs: TaskQS, now: datetime, queues: Sequence[str] | None) -> TaskQS:
    return qs.due(now, queues)  # type: ignore[attr-defined, no-any-return]  # a TaskQuerySet


def _claim_locking(
    qs: TaskQS, pool: str, limit: int, now: datetime, queues: Sequence[str] | None, expires: datetime
) -> list[Any]:
    # MariaDB has no UPDATE ... RETURNING: lock the rows, then update them. First a plain
    # count of the due rows, up to the limit, along taskq_due_idx: the locking SELECT walks
    # taskq_claim_idx, where run_after follows priority, so asked for more rows than are
    # due it would go on to read, and lock, every queued-but-delayed row.
    due = _due(qs, now, queues).order_by("run_after")[:limit].count()
    if not due:
        return []
    with transaction.atomic(using=qs.db):
        # SKIP LOCKED lets several processes claim side by side, and the status
        # condition on the UPDATE keeps the claim safe wherever locks are coarser.
        tasks = list(_due(qs, now, queues).select_for_update(skip_locked=True)[:due])
        if not tasks:
            return []
        pks = [t.pk for t in tasks]
        claimed = qs.filter(pk__in=pks, status=Status.QUEUED).update(
            status=Status.RUNNING,
            worker=pool,
            attempts=F("attempts") + 1,
            started_at=now,
            lease_expires_at=expires,
        )
        if claimed != len(tasks):
            mine = set(
                qs.filter(pk__in=pks, status=Status.RUNNING, worker=pool, started_at=now).values_list(
                    "pk", flat=True
                )
            )
            tasks = [t for t in tasks if t.pk in mine]
    for t in tasks:
        t.status, t.worker, t.started_at, t.lease_expires_at = Status.RUNNING, pool, now, expires
        t.attempts += 1
    return tasks


def renew_leases(qs: TaskQS, pool: str, pks: Sequence[int], lease: float) -> int:
    """Extend the leases of ``pool``'s running tasks in one UPDATE."""
    if not pks:
        return 0
    until = timezone.now() + timedelta(seconds=lease)
    return qs.filter(pk__in=list(pks), status=Status.RUNNING, worker=pool).update(lease_expires_at=until)


def recover_expired(qs: TaskQS, batch: int = 100) -> int:
    """Requeue, or fail once out of attempts, running tasks whose lease has lapsed."""
    now = timezone.now()
    fields = ("pk", "worker", "attempts", "max_attempts", "started_at", "cancel_requested", "history")
    expired = list(qs.filter(status=Status.RUNNING, lease_expires_at__lt=now).only(*fields)[:batch])
    recovered = 0
    for task in expired:
        entry = lost_entry(task.attempts, task.worker, task.started_at, now)
        if task.cancel_requested:
            changes: dict[str, Any] = {"status": Status.CANCELLED, "finished_at": now}
        elif task.attempts < task.max_attempts:
            changes = {"status": Status.QUEUED, "run_after": now}
        else:
            changes = {"status": Status.FAILED, "finished_at": now}
        # Conditional on the attempt we read, so pools that recover at the same moment
        # cannot both act on one task, nor on a later attempt that took its place.
        recovered += qs.filter(
            pk=task.pk,
            status=Status.RUNNING,
            worker=task.worker,
            attempts=task.attempts,
            lease_expires_at__lt=now,
        ).update(lease_expires_at=None, error=WORKER_LOST, history=appended(task.history, entry), **changes)
    return recovered


def release(qs: TaskQS, pool: str, pks: Sequence[int]) -> int:
    """Give back claimed tasks that never started, without counting the attempt."""
    if not pks:
        return 0
    return qs.filter(pk__in=list(pks), status=Status.RUNNING, worker=pool).update(
        status=Status.QUEUED, attempts=F("attempts") - 1, started_at=None, lease_expires_at=None
    )
