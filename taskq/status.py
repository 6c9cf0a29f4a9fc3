"""The queue at a glance: the few indexed queries behind ``manage.py taskq_status``, and their report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.utils import timezone

from taskq.conf import settings
from taskq.models import FINISHED, Status, Task, Worker
from taskq.schedule import OVERDUE_GRACE, ScheduleState, describe

# Bump when a key of as_json() changes meaning or goes away; adding keys keeps the version.
SCHEMA_VERSION = 1
RUNNING_LIMIT = 20
FAILURES_LIMIT = 10
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

    def problems(self, max_lag: float | None = None) -> list[str]:
        """Why the queue is unhealthy, one reason per line; empty when it is healthy."""
        found = []
        lag = self.lag()
        if max_lag is not None and lag is not None and lag > max_lag:
            found.append(
                f"the oldest due task has waited {format_duration(lag)}, over --max-lag {max_lag:g}s"
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

    def as_json(self, max_lag: float | None = None) -> dict[str, Any]:
        """The snapshot as a JSON-ready dict with a stable schema (see docs/operations.md)."""
        problems = self.problems(max_lag)
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
                    }
                    for t in self.running
                ],
            },
            "failures_last_hour": {
                "total": self.failures_total,
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
    """Read the queue's state in six queries, and two per schedule entry, each served by an index."""
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
        RunningTask(pk, path, queue, worker, started_at)
        for pk, path, queue, worker, started_at in Task.objects.running()
        .order_by("started_at", "pk")
        .values_list("pk", "path", "queue", "worker", "started_at")[:RUNNING_LIMIT]
    ]
    recent = Task.objects.filter(status__in=FINISHED, finished_at__gte=now - FAILURE_WINDOW).aggregate(
        failed=Count("pk", filter=Q(status=Status.FAILED)),
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
        throughput=recent,
        workers=workers,
        stale_workers=stale,
        stale_after=stale_after,
        schedules=schedules,
        schedule_error=schedule_error,
    )


def first_line(text: str, limit: int = 200) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    return clip(text.strip().split("\n", 1)[0].strip(), limit)


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on (C0, DEL, C1...) written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(seconds: float | timedelta | None) -> str:
    """A short human reading of a duration: 350 ms, 4.2 s, 3 min 05 s, 2 h 03 min, 3 d 04 h."""
    if seconds is None:
        return "-"
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render_text(snapshot: Snapshot, max_lag: float | None = None) -> str:
    """The snapshot as plain-text tables for a terminal."""
    at = timezone.localtime(snapshot.at)
    lines = [f"taskq status at {at:%Y-%m-%d %H:%M:%S %Z}", ""]
    totals = snapshot.totals
    lines += _table(
        ["Queue", "Queued", "Due", "Running", "Succeeded", "Failed", "Cancelled", "Lag"],
        [
            [name, *_counts(q.counts, q.due), format_duration(snapshot.lag(name))]
            for name, q in sorted(snapshot.queues.items())
        ]
        + [["(all)", *_counts(totals, snapshot.due), format_duration(snapshot.lag())]],
    )
    windows = ", ".join(f"{n} in the last {key}" for key, n in snapshot.throughput.items())
    lines += ["", f"Throughput (tasks finished): {windows}", ""]
    lines.append(f"Running ({len(snapshot.running)} of {totals[Status.RUNNING]})")
    lines += _table(
        ["ID", "Function", "Queue", "Running for", "Worker"],
        [
            [t.id, t.path, t.queue, format_duration(snapshot.seconds_since(t.started_at)), t.worker]
            for t in snapshot.running
        ],
    )
    lines += ["", f"Failed in the last hour ({snapshot.failures_total})"]
    lines += _table(
        ["ID", "Function", "Queue", "Ago", "Error"],
        [
            [
                f.id,
                f.path,
                f.queue,
                format_duration(snapshot.seconds_since(f.finished_at)),
                # Escapes can make a line longer; the cut comes after them.
                clip(printable(f.error), ERROR_LIMIT),
            ]
            for f in snapshot.failures
        ],
    )
    lines += ["", f"Live workers ({len(snapshot.workers)})"]
    lines += _workers_table(snapshot, snapshot.workers)
    if snapshot.stale_workers:
        lines += [
            "",
            f"Stale workers ({len(snapshot.stale_workers)}): no heartbeat for over "
            f"{format_duration(snapshot.stale_after)}; gone or stuck",
        ]
        lines += _workers_table(snapshot, snapshot.stale_workers)
    if snapshot.schedules or snapshot.schedule_error is not None:
        lines += ["", f"Schedules ({len(snapshot.schedules)})"]
        lines += _schedules_table(snapshot)
    problems = snapshot.problems(max_lag)
    lines += ["", "Health: OK" if not problems else "Health: UNHEALTHY"]
    lines += [f"  - {printable(p)}" for p in problems]
    return "\n".join(lines)


def _workers_table(snapshot: Snapshot, workers: list[LiveWorker]) -> list[str]:
    return _table(
        ["Host", "PID", "Threads", "Queues", "Heartbeat", "Up for"],
        [
            [
                w.hostname,
                w.pid,
                w.threads,
                ",".join(w.queues) if w.queues is not None else "all",
                f"{format_duration(snapshot.seconds_since(w.last_heartbeat))} ago",
                format_duration(snapshot.seconds_since(w.started_at)),
            ]
            for w in workers
        ],
    )


def _schedules_table(snapshot: Snapshot) -> list[str]:
    def ago(moment: datetime | None) -> str:
        return "-" if moment is None else f"{format_duration(snapshot.seconds_since(moment))} ago"

    def until(moment: datetime | None) -> str:
        if moment is None:
            return "never"
        return f"in {format_duration(max((moment - snapshot.at).total_seconds(), 0.0))}"

    return _table(
        ["Name", "Task", "When", "Next run", "Last run", "Last task", "Outcome", "Skipped", "Overdue"],
        [
            [
                e.name,
                e.task,
                e.spec,
                until(e.next_run),
                ago(e.last_run),
                "-" if e.last_task_id is None else e.last_task_id,
                e.last_outcome or "-",
                "-" if e.skipped is None else e.skipped,
                "OVERDUE" if e.overdue else "no",
            ]
            for e in snapshot.schedules
        ],
    )


def _counts(counts: dict[str, int], due: int) -> list[int]:
    return [counts[Status.QUEUED], due, *(counts[s] for s in STATUSES if s != Status.QUEUED)]


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    # Task data reaches an operator's terminal here: no cell may carry a control sequence.
    cells = [headers, *([printable(str(c)) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    # Numbers line up on the right, text on the left; the last column is not padded.
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    out = []
    for row in cells:
        padded = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        out.append("  " + "  ".join(padded).rstrip())
    return out
