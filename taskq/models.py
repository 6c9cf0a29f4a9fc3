"""The Task row is the queue; the Worker row is a live pool's heartbeat."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db import models, router
from django.db.models import Case, F, When
from django.utils import timezone

from taskq import claims, transitions
from taskq.statements import DUE_ORDER, update_row
from taskq.states import FINISHED, MAX_HISTORY, WORKER_LOST, Status, appended
from taskq.transitions import Cancellation, Requeued

__all__ = [
    "FINISHED",
    "MAX_HISTORY",
    "WORKER_LOST",
    "Cancellation",
    "MinuteRollup",
    "Requeued",
    "Status",
    "Task",
    "TaskQuerySet",
    "Worker",
]


class TaskQuerySet(models.QuerySet["Task"]):
    """Tasks by state, and the transitions that act on many at once."""

    def queued(self) -> TaskQuerySet:
        return self.filter(status=Status.QUEUED)

    def running(self) -> TaskQuerySet:
        return self.filter(status=Status.RUNNING)

    def succeeded(self) -> TaskQuerySet:
        return self.filter(status=Status.SUCCEEDED)

    def failed(self) -> TaskQuerySet:
        return self.filter(status=Status.FAILED)

    def cancelled(self) -> TaskQuerySet:
        return self.filter(status=Status.CANCELLED)

    def finished(self) -> TaskQuerySet:
        return self.filter(status__in=FINISHED)

    def due(self, now: datetime | None = None, queues: Sequence[str] | None = None) -> TaskQuerySet:
        """Queued tasks whose time has come, in the order they should run."""
        qs = self.queued().filter(run_after__lte=now or timezone.now())
        if queues is not None:
            qs = qs.filter(queue__in=list(queues))
        return qs.order_by(*DUE_ORDER)

    def claim(self, pool: str, limit: int, lease: float, queues: Sequence[str] | None = None) -> list[Task]:
        """Mark up to ``limit`` due tasks as running by ``pool`` and return them, in due order."""
        return claims.claim(self, pool, limit, lease, queues)

    def renew_leases(self, pool: str, pks: Sequence[int], lease: float) -> int:
        """Extend the leases of ``pool``'s running tasks in one UPDATE."""
        return claims.renew_leases(self, pool, pks, lease)

    def recover_expired(self, batch: int = 100) -> int:
        """Requeue, or fail once out of attempts, running tasks whose lease has lapsed."""
        return claims.recover_expired(self, batch)

    def release(self, pool: str, pks: Sequence[int]) -> int:
        """Give back claimed tasks that never started, without counting the attempt."""
        return claims.release(self, pool, pks)

    def prune(self, older_than: datetime, batch_size: int = 500, keep: Sequence[int] = ()) -> int:
        """Delete up to ``batch_size`` tasks that finished before ``older_than``, except ``keep``."""
        old = self.finished().filter(finished_at__lt=older_than)
        if keep:
            old = old.exclude(pk__in=list(keep))
        pks = list(old.order_by("finished_at").values_list("pk", flat=True)[:batch_size])
        if not pks:
            return 0
        deleted, _ = self.filter(pk__in=pks).delete()
        return deleted

    def cancel(self) -> Cancellation:
        """Cancel the queued tasks now, ask the running ones to stop, and say what became of each."""
        return transitions.cancel(self)

    def retry(self, by: str) -> Requeued:
        """Queue the failed and cancelled tasks again with a fresh attempt budget, keeping their history."""
        return transitions.retry(self, by)

    def run_again(self, by: str, limit: int) -> Requeued:
        """Queue a signed copy of each finished task; more than ``limit`` of them queues nothing."""
        return transitions.run_again(self, by, limit)


class Task(models.Model):
    """One call of a task function, from enqueue to its outcome."""

    path = models.CharField(max_length=255, help_text="Dotted path of the task function.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    signature = models.CharField(max_length=128, editable=False)
    queue = models.CharField(max_length=64, default="default")
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds; empty for none.")
    run_after = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="The pool that ran it last.")
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    retried_by = models.CharField(
        max_length=255, blank=True, editable=False, help_text="Who last retried or re-ran it in the admin."
    )
    # Signed with the path and arguments and unique, so a row's payload copied into a new
    # row cannot run: the copy needs the same uid, which the constraint refuses. A periodic
    # firing's uid names its schedule and tick, which makes each tick fire once.
    uid = models.CharField(max_length=191, null=True, unique=True, editable=False)  # noqa: DJ001 - NULL for rows from before uids
    # One entry per finished attempt (number, pool, times, outcome, error, bounded traceback).
    history = models.JSONField(default=list, blank=True, editable=False)
    # options(unique_key=...): at most one queued or running task holds a key. The database
    # keeps the key in unique_live only while the task is live, and a unique constraint on
    # that column refuses a second live holder; NULLs never clash, so finished tasks and
    # tasks without a key never do.
    unique_key = models.CharField(max_length=191, null=True, blank=True, editable=False)  # noqa: DJ001 - NULL: no key
    unique_live = models.GeneratedField(
        expression=Case(When(status__in=[Status.QUEUED, Status.RUNNING], then=F("unique_key"))),
        output_field=models.CharField(max_length=191, null=True),
        db_persist=True,
    )

    # Set by enqueue(): False when a unique key returned the live task that already held it.
    created: bool
    # What the running attempt last reported through current_task().progress(): done, total,
    # note, at (ISO time) and attempt, so a reader can tell a previous attempt's from this one's.
    progress = models.JSONField(null=True, blank=True, editable=False)

    objects: ClassVar[TaskQuerySet] = TaskQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        indexes = [
            # Serves the claim: equality on status, then the ORDER BY of due().
            models.Index(fields=["status", "-priority", "run_after", "enqueued_at"], name="taskq_claim_idx"),
            # How many tasks are due, as a range: the claim counts them before it scans.
            models.Index(fields=["status", "run_after"], name="taskq_due_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="taskq_lease_idx"),
            models.Index(fields=["status", "finished_at"], name="taskq_finished_idx"),
            # The admin's default ordering (-enqueued_at, -id), so its first page is an index
            # scan even when a burst of tasks shares one enqueued_at.
            models.Index(fields=["enqueued_at", "id"], name="taskq_enqueued_id_idx"),
            # The admin's filters, each with its newest-first ordering, so a filtered page
            # and the filter's list of distinct values are index scans at any table size.
            models.Index(fields=["status", "enqueued_at", "id"], name="taskq_status_enqueued_idx"),
            models.Index(fields=["queue", "enqueued_at", "id"], name="taskq_queue_enqueued_idx"),
            models.Index(fields=["path", "enqueued_at", "id"], name="taskq_path_enqueued_idx"),
            # taskq_status: counts by status and queue, and each queue's oldest due task,
            # read from the index alone.
            models.Index(fields=["status", "queue", "run_after"], name="taskq_status_queue_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["unique_live"], name="taskq_unique_live")]
        permissions = [("retry_task", "Can retry and run tasks again")]

    def __str__(self) -> str:
        return f"{self.path} #{self.pk} ({self.status})"

    def _finish(
        self, entry: dict[str, Any] | None = None, progress: dict[str, Any] | None = None, **fields: Any
    ) -> bool:
        # Conditional on still being this very attempt: a task whose lease was recovered, or
        # that timed out and was abandoned, must not have its outcome written twice. The claim
        # time tells attempts apart where the pool and the count repeat: a pool keeps its name,
        # and an admin retry starts the count again.
        using = router.db_for_write(Task, instance=self)
        mine: dict[str, Any] = {
            "status": Status.RUNNING,
            "worker": self.worker,
            "attempts": self.attempts,
            "started_at": self.started_at,
        }
        if entry is not None:
            fields["history"] = appended(self.history, entry)
        if progress is not None:
            fields["progress"] = progress  # the attempt's last report, in the same UPDATE
        # The common case costs one UPDATE; only a task asked to stop costs a second.
        updated = update_row(Task, using, self.pk, {**mine, "cancel_requested": False}, fields)
        if not updated:
            fields["status"] = Status.CANCELLED
            fields.setdefault("finished_at", timezone.now())
            fields.pop("run_after", None)
            if entry is not None:
                fields["history"] = appended(self.history, {**entry, "outcome": "cancelled"})
            updated = update_row(Task, using, self.pk, mine, fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def set_succeeded(
        self, result: Any, entry: dict[str, Any] | None = None, progress: dict[str, Any] | None = None
    ) -> bool:
        """Record a return value; a task asked to stop while running ends cancelled."""
        return self._finish(
            entry,
            progress,
            status=Status.SUCCEEDED,
            result=result,
            finished_at=timezone.now(),
            lease_expires_at=None,
        )

    def set_retrying(
        self,
        error: str,
        traceback: str,
        delay: float,
        entry: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Queue the task again after ``delay`` seconds; a task asked to stop ends cancelled instead."""
        return self._finish(
            entry,
            progress,
            status=Status.QUEUED,
            run_after=timezone.now() + timedelta(seconds=delay),
            error=error,
            traceback=traceback,
            lease_expires_at=None,
        )

    def set_failed(
        self,
        error: str,
        traceback: str = "",
        entry: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Record the final failure; a task asked to stop ends cancelled instead."""
        return self._finish(
            entry,
            progress,
            status=Status.FAILED,
            error=error,
            traceback=traceback,
            finished_at=timezone.now(),
            lease_expires_at=None,
        )

    def cancel(self) -> bool:
        """Cancel a queued task now, or ask a running one to stop; False if already finished."""
        done = Task.objects.filter(pk=self.pk).cancel()
        if done.cancelled:
            self.status, self.finished_at = Status.CANCELLED, done.at
        elif done.stopping or done.already_stopping:
            self.cancel_requested = True
        return bool(done.cancelled or done.stopping or done.already_stopping)

    def progress_for_display(self, now: datetime | None = None) -> dict[str, Any] | None:
        """The running or finished attempt's last progress: done, total, percent, note, age in seconds."""
        value = self.progress
        # A queued task's is the last attempt's, which a bar would show as this one's; and
        # a running attempt finds the previous one's on the row until it first reports.
        if self.status == Status.QUEUED or not isinstance(value, dict):
            return None
        if value.get("attempt") != self.attempts:
            return None
        done, total, note = value.get("done"), value.get("total"), value.get("note")
        try:
            age = ((now or timezone.now()) - datetime.fromisoformat(value["at"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            return None  # no time, or not one written by progress()
        if not isinstance(done, (int, float)) or not isinstance(total, (int, float, type(None))):
            return None  # not written by progress(): edited by hand
        percent = None
        if total is not None:
            # Cut, not rounded, to a tenth: 100 % only once done reaches total.
            percent = 100.0 if done >= total else int(1000 * done / total) / 10
        return {
            "done": done,
            "total": total,
            "percent": percent,
            "note": note if isinstance(note, str) else "",
            "age": max(age, 0.0),
        }

    @property
    def wait_time(self) -> timedelta | None:
        """How long it waited between enqueue and its (last) start."""
        return None if self.started_at is None else self.started_at - self.enqueued_at

    @property
    def run_time(self) -> timedelta | None:
        """How long its last attempt ran."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def signature_verifies(self) -> bool:
        """Whether the path, arguments and uid match the signature under SECRET_KEY or a fallback."""
        return transitions.verifies(self)

    def resign(self, uid: str) -> None:
        """Sign the task anew under SECRET_KEY with ``uid``, or raise InvalidTask if it cannot run."""
        transitions.resign(self, uid)


class Worker(models.Model):
    """A live pool, heartbeating so taskq_status can list it and prune the dead."""

    name = models.CharField(max_length=255, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    threads = models.PositiveIntegerField()
    queues = models.JSONField(null=True, blank=True, help_text="Empty means every queue.")
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.name


class MinuteRollup(models.Model):
    """Tasks that finished or were retried in one minute (UTC), and the backlog seen just after it."""

    minute = models.DateTimeField(unique=True)
    # The minute's hour, so a week is summed per hour by a plain GROUP BY: truncating
    # ten thousand minutes costs a Python call per row on SQLite.
    hour = models.DateTimeField()
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    retried = models.PositiveIntegerField(default=0)
    # Sampled when the minute was rolled; NULL for minutes rolled while catching up.
    due = models.PositiveIntegerField(null=True)
    lag = models.FloatField(null=True, help_text="Seconds the oldest due task had waited.")

    objects: ClassVar[models.Manager[MinuteRollup]] = models.Manager()

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} +{self.succeeded} !{self.failed} ~{self.retried}"
