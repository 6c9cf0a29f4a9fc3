"""Claiming and running one task in the calling thread, for immediate mode and run_due()."""

from __future__ import annotations

import traceback as tb

from django.db import DatabaseError, router, transaction
from django.utils import timezone

from taskq.models import Status, Task
from taskq.worker import backoff, record_failure, run_task

# The worker name recorded on attempts run this way, in place of a pool's "host:pid:hex".
IMMEDIATE = "immediate"


def claim(task: Task, worker: str) -> bool:
    """Mark ``task`` running in this thread, unless it is no longer the queued row we hold."""
    now = timezone.now()
    # Conditional on the attempt count we hold, so a pool that claimed and requeued
    # the task in the meantime wins and our copy is never run stale.
    claimed = Task.objects.filter(pk=task.pk, status=Status.QUEUED, attempts=task.attempts).update(
        status=Status.RUNNING,
        worker=worker,
        attempts=task.attempts + 1,
        started_at=now,
        lease_expires_at=None,
    )
    if claimed:
        task.status, task.worker, task.started_at = Status.RUNNING, worker, now
        task.attempts += 1
        task.lease_expires_at = None
    return bool(claimed)


def run_claimed(task: Task) -> Task:
    """Run a task this thread claimed, without letting it break the caller's transaction."""
    connection = transaction.get_connection(router.db_for_write(Task))
    if not connection.in_atomic_block:
        return run_task(task)
    try:
        # Inside a transaction (a TestCase, or run_due() in an atomic block) a database
        # error in the task would poison the caller's transaction and stop the outcome
        # from being written. A savepoint confines the damage to the task's own work.
        with transaction.atomic(using=connection.alias):
            return run_task(task)
    except DatabaseError as exc:
        # Writing the outcome failed because the task broke the savepoint; that was
        # rolled back, so record the task's own error (the context) in the healthy outer one.
        cause = exc.__context__ if isinstance(exc.__context__, Exception) else exc
        record_failure(task, cause, "".join(tb.format_exception(cause)), backoff(task.attempts))
        return task
