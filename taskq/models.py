"""The Task row is the queue; the Worker row is a live pool's heartbeat."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db import connections, models, router, transaction
from django.db.models import F
from django.utils import timezone

from taskq.exceptions import WorkerLost
from taskq.features import features
from taskq.statements import DUE_ORDER, ClaimedButUnreadable, claim_returning, update_row


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
WORKER_LOST = (
    "WorkerLost: the lease lapsed before the outcome was recorded: the process running this "
    "task died, or lost the database until the lease expired"
)
# Task.history keeps the first attempt and the latest ones, so a row stays small.
MAX_HISTORY = 20


def _appended(history: list[dict[str, Any]] | None, entry: dict[str, Any]) -> list[dict[str, Any]]:
    entries = [*(history or []), entry]
    if len(entries) > MAX_HISTORY:
        entries = [entries[0], *entries[-(MAX_HISTORY - 1) :]]
    return entries


class TaskQuerySet(models.QuerySet["Task"]):
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

    def claim(self, worker: str, limit: int, lease: float, queues: Sequence[str] | None = None) -> list[Task]:
        """Mark up to ``limit`` due tasks as running by ``worker`` and return them."""
        if limit <= 0 or (queues is not None and not queues):
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        # A claim writes, so it goes where the router sends writes, never to a replica:
        # the same switch QuerySet.update() and select_for_update() flip.
        qs = self.all()
        qs._for_write = True  # type: ignore[attr-defined]  # private in django-stubs
        if features(connections[qs.db]).returning_claim:
            try:
                tasks = claim_returning(
                    Task, qs.db, worker, limit, now, expires, queues, Status.QUEUED, Status.RUNNING
                )
            except ClaimedButUnreadable as exc:
                # The claim has committed: give the rows back rather than strand them as
                # running until their leases lapse, which would count an attempt never made.
                self.using(qs.db).release(worker, exc.pks)
                raise exc.__cause__ or exc from None
            # RETURNING follows no ORDER BY: put the batch back in the order due() chose.
            tasks.sort(key=lambda t: (-t.priority, t.run_after, t.enqueued_at, t.pk))
        else:
            tasks = qs._claim_locking(worker, limit, now, queues, expires)
            for t in tasks:
                t.status = Status.RUNNING
                t.worker = worker
                t.attempts += 1
                t.started_at = now
                t.lease_expires_at = expires
        return tasks

    def _claim_locking(
        self, worker: str, limit: int, now: datetime, queues: Sequence[str] | None, expires: datetime
    ) -> list[Task]:
        # MariaDB has no UPDATE ... RETURNING: lock the rows, then update them. First a plain
        # count of the due rows, up to the limit, along taskq_due_idx: the locking SELECT walks
        # taskq_claim_idx, where run_after follows priority, so asked for more rows than are
        # due it would go on to read, and lock, every queued-but-delayed row. The count comes
        # before the transaction, so a row that becomes due in between waits for the next
        # claim, and claimers racing for the same counted rows still scan on past them.
        due = self.due(now, queues).order_by("run_after")[:limit].count()
        if not due:
            return []
        with transaction.atomic(using=self.db):
            # SKIP LOCKED lets several processes claim side by side, and the status
            # condition on the UPDATE keeps the claim safe wherever locks are coarser.
            candidates = self.due(now, queues).select_for_update(skip_locked=True)
            tasks = list(candidates[:due])
            if not tasks:
                return []
            claimed = self.filter(pk__in=[t.pk for t in tasks], status=Status.QUEUED).update(
                status=Status.RUNNING,
                worker=worker,
                attempts=F("attempts") + 1,
                started_at=now,
                lease_expires_at=expires,
            )
            if claimed != len(tasks):
                mine = set(
                    self.filter(
                        pk__in=[t.pk for t in tasks],
                        status=Status.RUNNING,
                        worker=worker,
                        started_at=now,
                    ).values_list("pk", flat=True)
                )
                tasks = [t for t in tasks if t.pk in mine]
        return tasks

    def renew_leases(self, worker: str, pks: Sequence[int], lease: float) -> int:
        """Extend the leases of ``worker``'s running tasks in one UPDATE."""
        if not pks:
            return 0
        until = timezone.now() + timedelta(seconds=lease)
        return self.filter(pk__in=list(pks), status=Status.RUNNING, worker=worker).update(
            lease_expires_at=until
        )

    def recover_expired(self, batch: int = 100) -> int:
        """Requeue, or fail once out of attempts, running tasks whose lease has lapsed."""
        now = timezone.now()
        expired = list(
            self.filter(status=Status.RUNNING, lease_expires_at__lt=now).only(
                "pk", "worker", "attempts", "max_attempts", "started_at", "cancel_requested", "history"
            )[:batch]
        )
        recovered = 0
        for task in expired:
            entry = {
                "attempt": task.attempts,
                "worker": task.worker,
                "started_at": task.started_at.isoformat() if task.started_at else None,
                "finished_at": now.isoformat(),
                "outcome": "lost",
                "error": WORKER_LOST,
                "exception": f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
                "traceback": "",
            }
            if task.cancel_requested:
                fields: dict[str, Any] = {"status": Status.CANCELLED, "finished_at": now}
            elif task.attempts < task.max_attempts:
                fields = {"status": Status.QUEUED, "run_after": now}
            else:
                fields = {"status": Status.FAILED, "finished_at": now}
            # Conditional on the attempt we read, so pools that recover at the same moment
            # cannot both act on one task, nor on a later attempt that took its place.
            recovered += self.filter(
                pk=task.pk,
                status=Status.RUNNING,
                worker=task.worker,
                attempts=task.attempts,
                lease_expires_at__lt=now,
            ).update(
                lease_expires_at=None, error=WORKER_LOST, history=_appended(task.history, entry), **fields
            )
        return recovered

    def release(self, worker: str, pks: Sequence[int]) -> int:
        """Give back claimed tasks that never started, without counting the attempt."""
        if not pks:
            return 0
        return self.filter(pk__in=list(pks), status=Status.RUNNING, worker=worker).update(
            status=Status.QUEUED,
            attempts=F("attempts") - 1,
            started_at=None,
            lease_expires_at=None,
        )

    def prune(self, older_than: datetime, batch_size: int = 500) -> int:
        """Delete up to ``batch_size`` tasks that finished before ``older_than``."""
        pks = list(
            self.finished()
            .filter(finished_at__lt=older_than)
            .order_by("finished_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not pks:
            return 0
        deleted, _ = self.filter(pk__in=pks).delete()
        return deleted


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
        permissions = [("retry_task", "Can retry and run tasks again")]

    def __str__(self) -> str:
        return f"{self.path} #{self.pk} ({self.status})"

    def _finish(
        self, entry: dict[str, Any] | None = None, progress: dict[str, Any] | None = None, **fields: Any
    ) -> bool:
        # Conditional on still being ours: a task whose lease was recovered, or that
        # timed out and was abandoned, must not have its outcome written twice.
        using = router.db_for_write(Task, instance=self)
        mine: dict[str, Any] = {"status": Status.RUNNING, "worker": self.worker, "attempts": self.attempts}
        if entry is not None:
            fields["history"] = _appended(self.history, entry)
        if progress is not None:
            fields["progress"] = progress  # the attempt's last report, in the same UPDATE
        # The common case costs one UPDATE; only a task asked to stop costs a second.
        updated = update_row(Task, using, self.pk, {**mine, "cancel_requested": False}, fields)
        if not updated:
            fields["status"] = Status.CANCELLED
            fields.setdefault("finished_at", timezone.now())
            fields.pop("run_after", None)
            if entry is not None:
                fields["history"] = _appended(self.history, {**entry, "outcome": "cancelled"})
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
        now = timezone.now()
        if Task.objects.filter(pk=self.pk, status=Status.QUEUED).update(
            status=Status.CANCELLED, finished_at=now
        ):
            self.status, self.finished_at = Status.CANCELLED, now
            return True
        if Task.objects.filter(pk=self.pk, status=Status.RUNNING).update(cancel_requested=True):
            self.cancel_requested = True
            return True
        return False

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
