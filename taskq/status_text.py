"""taskq_status for people: the snapshot drawn as plain-text tables, safe for any terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from taskq.display import clip, format_duration, format_percent, printable
from taskq.models import Status
from taskq.status import ERROR_LIMIT, RETRYING_SCAN, STATUSES, LiveWorker, RetryingTask, Snapshot

BAR_WIDTH = 10
# Progress reported longer ago than this says when, so a task that went quiet stands out.
QUIET_PROGRESS = 60.0


def render_text(
    snapshot: Snapshot, max_lag: float | None = None, max_failure_rate: float | None = None
) -> str:
    """The snapshot as plain-text tables for a terminal."""
    lines = [f"taskq status at {clock(snapshot.at)}", ""]
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
    lines += ["", f"Throughput (tasks finished): {windows}"]
    lines += [failure_rate_line(snapshot, max_failure_rate), ""]
    lines.append(f"Running ({_shown(len(snapshot.running), totals[Status.RUNNING], 'longest')})")
    lines += _table(
        ["ID", "Function", "Queue", "Running for", "Worker", "Attempt", "Progress"],
        [
            [
                t.id,
                t.path,
                t.queue,
                format_duration(snapshot.seconds_since(t.started_at)),
                t.worker,
                f"{t.attempt} of {t.max_attempts}",
                progress_bar(t.progress),
            ]
            for t in snapshot.running
        ],
    )
    if snapshot.retrying_total or not snapshot.retrying_scanned_all:
        shown = _shown(len(snapshot.retrying), snapshot.retrying_total, "next")
        if not snapshot.retrying_scanned_all:
            shown += f" among the next {RETRYING_SCAN} queued"
        lines += ["", f"Retrying ({shown})"]
        lines += _table(
            ["ID", "Function", "Queue", "Next attempt", "Last error"],
            [
                [t.id, t.path, t.queue, next_attempt(t, snapshot.at), clip(printable(t.error), ERROR_LIMIT)]
                for t in snapshot.retrying
            ],
        )
    lines += [
        "",
        f"Failed in the last hour ({_shown(len(snapshot.failures), snapshot.failures_total, 'latest')})",
    ]
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
    problems = snapshot.problems(max_lag, max_failure_rate)
    lines += ["", "Health: OK" if not problems else "Health: UNHEALTHY"]
    lines += [f"  - {printable(p)}" for p in problems]
    return "\n".join(lines)


def clock(moment: datetime, today: datetime | None = None) -> str:
    """``moment`` in the current time zone, to the second and with the zone's name.

    Given ``today``, the date is left out when ``moment`` falls on the same local day.
    """
    local = timezone.localtime(moment)
    if today is not None and timezone.localtime(today).date() == local.date():
        return f"{local:%H:%M:%S %Z}"
    return f"{local:%Y-%m-%d %H:%M:%S %Z}"


def failure_rate_line(snapshot: Snapshot, max_failure_rate: float | None = None) -> str:
    """The last hour's failure rate, what it counts, and the limit it is held to."""
    rate = snapshot.failure_rate
    if rate is None:
        return "Failure rate in the last hour: - (no task succeeded or failed)"
    line = (
        f"Failure rate in the last hour: {format_percent(rate)} "
        f"({snapshot.failures_total} failed, {snapshot.succeeded_last_hour} succeeded)"
    )
    if max_failure_rate is not None:
        line += f"; unhealthy above {format_percent(max_failure_rate)}"
    return line


def next_attempt(task: RetryingTask, now: datetime) -> str:
    """When a retrying task runs again: "attempt 2 of 3 at 12:00:04 UTC (in 4.0 s)"."""
    wait = (task.run_after - now).total_seconds()
    when = f"in {format_duration(wait)}" if wait > 0 else f"due {format_duration(-wait)} ago"
    return f"attempt {task.attempt} of {task.max_attempts} at {clock(task.run_after, now)} ({when})"


def progress_bar(progress: dict[str, Any] | None) -> str:
    """A running task's progress as a short bar: "[#####.....] 50.0% 5/10 note"; "-" if none."""
    if progress is None:
        return "-"
    done, total, percent = progress["done"], progress["total"], progress["percent"]
    if total is None or percent is None:
        text = f"{_amount(done)} done"
    else:
        filled = min(int(percent * BAR_WIDTH // 100), BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        text = f"[{bar}] {percent:.1f}% {_amount(done)}/{_amount(total)}"
    if progress["note"]:
        text += f" {progress['note']}"
    if progress["age"] >= QUIET_PROGRESS:
        text += f" (reported {format_duration(progress['age'])} ago)"
    return text


def _amount(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _shown(shown: int, total: int, which: str) -> str:
    """How many a list shows: "13", or "latest 10 of 13" when it holds only some."""
    if total <= shown:
        return str(shown)
    return f"{which} {shown} of {total}"


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
