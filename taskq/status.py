"""The queue at a glance: the few indexed queries behind ``manage.py taskq_status``, its health and its JSON.

``taskq.status_text`` draws the same snapshot as text for a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import Case, Count, Min, Q, Value, When
from django.db.models.functions import Left
from django.utils import timezone

from taskq.conf import settings
from taskq.display import first_line, format_percent
from taskq.display import format_duration as format_duration  # the admin's import
from taskq.models import FINISHED, Status, Task, Worker
from taskq.schedule import OVERDUE_GRACE, ScheduleState, describe

# Bump when a key of as_json() changes meaning or goes away; adding keys keeps the version.
SCHEMA_VERSION = 1
RUNNING_LIMIT = 20
FAILURES_LIMIT = 10
RETRYING_LIMIT = 10
# Retrying tasks are looked for among this many queued tasks, the next to run. No index
# holds attempts, and filtering on them would walk every queued row when none is retrying.
RETRYING_SCAN = 1000
FAILURE_WINDOW = timedelta(hours=1)
ERROR_LIMIT = 1000  # characters of an error's first line, as shown
THROUGHPUT_WINDOWS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "15m": timedelta(minutes=15)}
STATUSES = [s.value for s in Status]


@dataclass
class QueueSummary:
    """One queue's task counts by status, and how many of its queued tasks are due."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    due: int = 0
    oldest_due: datetime | None = None


@dataclass(frozen=True)
class RunningTask:
    id: int
    path: str
    queue: str
    worker: str
    started_at: datetime | None
    attempt: int = 1
    max_attempts: int = 1
    # Task.progress_for_display(): done, total, percent, note, age; None if it never reported.
    progress: dict[str, Any] | None = None


@dataclass(frozen=True)
class RetryingTask:
    """A queued task that has run before and waits for its next attempt."""

    id: int
    path: str
    queue: str
    attempt: int  # the one it waits for: attempts so far plus one
    max_attempts: int
    run_after: datetime
    error: str  # the last attempt's, its first line


@dataclass(frozen=True)
class Failure:
    id: int
    path: str
    queue: str
    finished_at: datetime | None
    error: str  # its first line, at most ERROR_LIMIT characters


@dataclass(frozen=True)
class LiveWorker:
    """One Worker row: a pool as of its last heartbeat."""

    name: str
    hostname: str
    pid: int
    threads: int
    queues: list[str] | None
    started_at: datetime
    last_heartbeat: datetime

    def serves(self, queue: str) -> bool:
        """True if this pool claims from ``queue``."""
        return self.queues is None or queue in self.queues


@dataclass(frozen=True)
class Snapshot:
    """What taskq_status reports, read at one moment."""

    at: datetime
    queues: dict[str, QueueSummary]
    running: list[RunningTask]
    failures: list[Failure]
    failures_total: int
    throughput: dict[str, int]
    workers: list[LiveWorker]
    # Rows whose pool missed two heartbeats: it is gone (killed before it could unregister) or stuck.
    stale_workers: list[LiveWorker] = field(default_factory=list)
    stale_after: float = 0.0
    schedules: list[ScheduleState] = field(default_factory=list)
    # Why the schedule could not be read (an app's tasks module failed to import), if it could not.
    schedule_error: str | None = None
    # Queued tasks with an attempt behind them, soonest first, and how many there are among
    # the next RETRYING_SCAN queued tasks (all of them, if retrying_scanned_all).
    retrying: list[RetryingTask] = field(default_factory=list)
    retrying_total: int = 0
    retrying_scanned_all: bool = True
    # Tasks that succeeded within FAILURE_WINDOW, the other half of the failure rate.
    succeeded_last_hour: int = 0

    @property
    def failure_rate(self) -> float | None:
        """Failed / (succeeded + failed) among tasks finished in the last hour; None if none did."""
        finished = self.failures_total + self.succeeded_last_hour
        return self.failures_total / finished if finished else None

    @property
    def totals(self) -> dict[str, int]:
        """Task counts by status across every queue."""
        return {s: sum(q.counts[s] for q in self.queues.values()) for s in STATUSES}

    @property
    def due(self) -> int:
        """Queued tasks whose time has come, across every queue."""
        return sum(q.due for q in self.queues.values())

    def lag(self, queue: str | None = None) -> float | None:
        """Seconds the oldest due task (of ``queue``, or of any) has waited; None if none is due."""
        oldest = [
            q.oldest_due
            for name, q in self.queues.items()
            if q.oldest_due is not None and queue in (None, name)
        ]
        return max((self.at - min(oldest)).total_seconds(), 0.0) if oldest else None

    def problems(self, max_lag: float | None = None, max_failure_rate: float | None = None) -> list[str]:
        """Why the queue is unhealthy, one reason per line; empty when it is healthy."""
        found = []
        lag = self.lag()
        if max_lag is not None and lag is not None and lag > max_lag:
            found.append(
                f"the oldest due task has waited {format_duration(lag)}, over --max-lag {max_lag:g}s"
            )
        rate = self.failure_rate
        if max_failure_rate is not None and rate is not None and rate > max_failure_rate:
            found.append(
                f"{format_percent(rate)} of the tasks finished in the last hour failed "
                f"({self.failures_total} of {self.failures_total + self.succeeded_last_hour}), "
                f"over --max-failure-rate {max_failure_rate:g}"
            )
        if self.due and not self.workers:
            found.append(f"{self.due} due task(s) wait and no live worker heartbeats")
        elif self.due:
            for name, q in sorted(self.queues.items()):
                if q.due and not any(w.serves(name) for w in self.workers):
                    found.append(f"{q.due} due task(s) wait in queue {name!r} and no live worker serves it")
        if self.schedule_error is not None:
            found.append(f"cannot read the schedule: {self.schedule_error}")
        for entry in self.schedules:
            if entry.overdue:
                found.append(
                    f"schedule {entry.name!r} ({entry.spec}) is overdue: it last fired "
                    f"{format_duration(self.seconds_since(entry.last_run))} ago, over its period "
                    f"plus {format_duration(OVERDUE_GRACE)}"
                )
        return found

    def as_json(self, max_lag: float | None = None, max_failure_rate: float | None = None) -> dict[str, Any]:
        """The snapshot as a JSON-ready dict with a stable schema (see docs/operations.md)."""
        problems = self.problems(max_lag, max_failure_rate)
        return {
            "schema": SCHEMA_VERSION,
            "at": self.at.isoformat(),
            "healthy": not problems,
            "problems": problems,
            "lag_seconds": _round(self.lag()),
            "totals": self.totals,
            "queues": {
                name: {**q.counts, "due": q.due, "lag_seconds": _round(self.lag(name))}
                for name, q in sorted(self.queues.items())
            },
            "running": {
                "total": self.totals[Status.RUNNING],
                "tasks": [
                    {
                        "id": t.id,
                        "path": t.path,
                        "queue": t.queue,
                        "worker": t.worker,
                        "started_at": _iso(t.started_at),
                        "seconds": _round(self.seconds_since(t.started_at)),
                        "attempt": t.attempt,
                        "max_attempts": t.max_attempts,
                        "progress": t.progress and {**t.progress, "age": _round(t.progress["age"])},
                    }
                    for t in self.running
                ],
            },
            "retrying": {
                "total": self.retrying_total,
                "among_next": None if self.retrying_scanned_all else RETRYING_SCAN,
                "tasks": [
                    {
                        "id": t.id,
                        "path": t.path,
                        "queue": t.queue,
                        "attempt": t.attempt,
                        "max_attempts": t.max_attempts,
                        "run_after": t.run_after.isoformat(),
                        "seconds_until": _round((t.run_after - self.at).total_seconds()),
                        "error": t.error,
                    }
                    for t in self.retrying
                ],
            },
            "failures_last_hour": {
                "total": self.failures_total,
                "succeeded": self.succeeded_last_hour,
                "rate": None if self.failure_rate is None else round(self.failure_rate, 4),
                "tasks": [
                    {
                        "id": f.id,
                        "path": f.path,
                        "queue": f.queue,
                        "finished_at": _iso(f.finished_at),
                        "error": f.error,
                    }
                    for f in self.failures
                ],
            },
            "throughput": self.throughput,
            "workers": [self._worker_json(w) for w in self.workers],
            "stale_after_seconds": self.stale_after,
            "stale_workers": [self._worker_json(w) for w in self.stale_workers],
            "schedule_grace_seconds": OVERDUE_GRACE.total_seconds(),
            "schedules": [
                {
                    "name": e.name,
                    "task": e.task,
                    "spec": e.spec,
                    "next_run": _iso(e.next_run),
                    "last_run": _iso(e.last_run),
                    "last_task_id": e.last_task_id,
                    "last_outcome": e.last_outcome,
                    "skipped": e.skipped,
                    "overdue": e.overdue,
                }
                for e in self.schedules
            ],
        }

    def _worker_json(self, w: LiveWorker) -> dict[str, Any]:
        return {
            "name": w.name,
            "hostname": w.hostname,
            "pid": w.pid,
            "threads": w.threads,
            "queues": w.queues,
            "started_at": w.started_at.isoformat(),
            "last_heartbeat": w.last_heartbeat.isoformat(),
            "heartbeat_age_seconds": _round(self.seconds_since(w.last_heartbeat)),
        }

    def seconds_since(self, moment: datetime | None) -> float | None:
        """Seconds from ``moment`` to this snapshot, never negative (clocks of hosts drift)."""
        return None if moment is None else max((self.at - moment).total_seconds(), 0.0)


def take_snapshot(now: datetime | None = None) -> Snapshot:
    """Read the queue's state in seven queries, and two per schedule entry, each served by an index."""
    now = now or timezone.now()
    queues: dict[str, QueueSummary] = {}
    # GROUP BY status, queue: the order of taskq_status_queue_idx, so MariaDB groups
    # along the index instead of through a temporary table.
    for status, queue, n in (
        Task.objects.order_by()
        .values_list("status", "queue")
        .annotate(n=Count("pk"))
        .values_list("status", "queue", "n")
    ):
        queues.setdefault(queue, QueueSummary()).counts[status] = n
    due = Task.objects.queued().filter(run_after__lte=now).order_by().values("queue")
    for row in due.annotate(n=Count("pk"), oldest=Min("run_after")):
        summary = queues.setdefault(row["queue"], QueueSummary())
        summary.due, summary.oldest_due = row["n"], row["oldest"]
    running = [
        RunningTask(
            t.pk,
            t.path,
            t.queue,
            t.worker,
            t.started_at,
            t.attempts,
            t.max_attempts,
            t.progress_for_display(now),
        )
        for t in Task.objects.running()
        .order_by("started_at", "pk")
        .only("path", "queue", "worker", "started_at", "status", "attempts", "max_attempts", "progress")[
            :RUNNING_LIMIT
        ]
    ]
    # The next queued tasks, from (status, run_after) in order; those that ran before are retrying.
    window = list(
        Task.objects.queued()
        .order_by("run_after", "pk")
        .values_list(
            "pk",
            "path",
            "queue",
            "attempts",
            "max_attempts",
            "run_after",
            # Only a retrying task's error is shown, and only its first line.
            Case(When(attempts__gt=0, then=Left("error", 2 * ERROR_LIMIT)), default=Value("")),
        )[:RETRYING_SCAN]
    )
    retrying = [
        RetryingTask(pk, path, queue, attempts + 1, max_attempts, run_after, first_line(error, ERROR_LIMIT))
        for pk, path, queue, attempts, max_attempts, run_after, error in window
        if attempts > 0
    ]
    recent = Task.objects.filter(status__in=FINISHED, finished_at__gte=now - FAILURE_WINDOW).aggregate(
        failed=Count("pk", filter=Q(status=Status.FAILED)),
        succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
        **{
            key: Count("pk", filter=Q(finished_at__gte=now - window))
            for key, window in THROUGHPUT_WINDOWS.items()
        },
    )
    failures = [
        Failure(pk, path, queue, finished_at, first_line(error, ERROR_LIMIT))
        for pk, path, queue, finished_at, error in Task.objects.failed()
        .filter(finished_at__gte=now - FAILURE_WINDOW)
        .order_by("-finished_at", "-pk")
        .values_list("pk", "path", "queue", "finished_at", "error")[:FAILURES_LIMIT]
    ]
    # A pool killed before it could unregister leaves its row until another pool prunes
    # it, a lease later; it counts as gone from its second missed heartbeat.
    stale_after = settings.stale_after
    workers: list[LiveWorker] = []
    stale: list[LiveWorker] = []
    for w in Worker.objects.order_by("hostname", "pid", "name"):
        pool = LiveWorker(w.name, w.hostname, w.pid, w.threads, w.queues, w.started_at, w.last_heartbeat)
        fresh = pool.last_heartbeat >= now - timedelta(seconds=stale_after)
        (workers if fresh else stale).append(pool)
    schedules: list[ScheduleState] = []
    schedule_error = None
    try:
        schedules = describe(now)
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - any app's tasks module may fail to import; report it
        schedule_error = first_line(f"{type(exc).__name__}: {exc}", ERROR_LIMIT)
    return Snapshot(
        at=now,
        queues=queues,
        running=running,
        failures=failures,
        failures_total=recent.pop("failed"),
        succeeded_last_hour=recent.pop("succeeded"),
        throughput=recent,
        workers=workers,
        stale_workers=stale,
        stale_after=stale_after,
        schedules=schedules,
        schedule_error=schedule_error,
        retrying=retrying[:RETRYING_LIMIT],
        retrying_total=len(retrying),
        retrying_scanned_all=len(window) < RETRYING_SCAN,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
