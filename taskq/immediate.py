"""Claiming and running one task in the calling thread, for immediate mode and run_due()."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from taskq.attempt import run_task
from taskq.conf import settings
from taskq.models import Status, Task

# What Task.worker records for attempts run this way, in place of a pool's "host:pid:hex".
IMMEDIATE = "immediate"
# The lease of an attempt without a timeout that runs in the caller's thread, which nothing renews.
NO_TIMEOUT_LEASE = 3600.0


def lease_for(task: Task) -> float:
    """Seconds of lease for an attempt that runs in the caller's thread, which never renews it."""
    # Long enough for the task to finish within its timeout (or, without one, an hour), so
    # a pool elsewhere does not recover it while it still runs; short enough that a crash
    # mid-task is still recovered.
    return settings.lease_seconds + (task.timeout or NO_TIMEOUT_LEASE)


def claim(task: Task, runner: str) -> bool:
    """Mark ``task`` running in this thread, unless it is no longer the queued row we hold."""
    now = timezone.now()
    expires = now + timedelta(seconds=lease_for(task))
    # Conditional on the attempt count we hold, so a pool that claimed and requeued
    # the task in the meantime wins and our copy is never run stale.
    claimed = Task.objects.filter(pk=task.pk, status=Status.QUEUED, attempts=task.attempts).update(
        status=Status.RUNNING,
        worker=runner,
        attempts=task.attempts + 1,
        started_at=now,
        lease_expires_at=expires,
    )
    if claimed:
        task.status, task.worker, task.started_at = Status.RUNNING, runner, now
        task.attempts += 1
        task.lease_expires_at = expires
    return bool(claimed)


def run_claimed(task: Task) -> Task:
    """Run a task this thread claimed; inside a transaction its work gets a savepoint of its own."""
    return run_task(task)


def run_immediately(task: Task) -> Task:
    """Immediate mode: run a committed task now in this thread, and again while a retry is due."""
    # A task enqueued with a delay, or a retry with a backoff, is not due yet: it stays
    # queued, as it would for a pool, until run_due() or a pool picks it up.
    while task.run_after <= timezone.now() and claim(task, IMMEDIATE):
        run_claimed(task)
        if task.status != Status.QUEUED:
            break
    return task
