"""Progress reported from inside a task: checked, kept in memory, and written at most once a second.

The write happens on the thread that runs the task, through the connection that thread
already uses (and that the runner, or the request, closes after the task). A value
reported within a second of the last write waits for the next report, and the latest one
always rides along with the attempt's outcome, in the same UPDATE.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import Error, connections, router, transaction
from django.utils import timezone

from taskq.bounds import one_line
from taskq.exceptions import InvalidTask
from taskq.models import Status, Task
from taskq.statements import update_row

logger = logging.getLogger("taskq")

MAX_NOTE_CHARS = 200
# At most one write per attempt in this many seconds, however often the task reports.
WRITE_INTERVAL = 1.0
# Beyond 2**53 a JSON number loses precision in JavaScript and in some databases' JSON.
MAX_COUNT = 2**53


def _count(name: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise InvalidTask(
            f"progress {name}={value!r} is not a number: pass how many items (or any unit) are done, "
            "as an int or a float."
        )
    number: int | float = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not (math.isfinite(number) and 0 <= number <= MAX_COUNT):
        raise InvalidTask(
            f"progress {name}={value!r} is not a finite number between 0 and 2**53: "
            "pass a count of work done (and of work in all) that starts at 0."
        )
    return number


def checked(done: object, total: object, note: object, attempt: int) -> dict[str, Any]:
    """Return the value to store for a report, or raise InvalidTask for one that makes no sense."""
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise InvalidTask(f"progress note={note!r} is not a string: pass a short text, or leave it out.")
    # ``done`` may pass ``total``: estimates run over, and a display caps the bar at 100 %.
    return {
        "done": _count("done", done),
        "total": None if total is None else _count("total", total),
        "note": one_line(note, MAX_NOTE_CHARS),
        "at": timezone.now().isoformat(),
        "attempt": attempt,
    }


class Reporter:
    """One attempt's progress: the latest value, when it was last written, and where it may be written."""

    def __init__(self, task_id: int, attempt: int, worker: str, started_at: datetime | None) -> None:
        self.task_id = task_id
        self.attempt = attempt
        # Created by the thread that runs the task, just before the task's own code.
        self._thread = threading.get_ident()
        self._alias = router.db_for_write(Task)
        # Immediate mode or run_due() inside the caller's transaction: the claim already
        # holds the row there, so a write inside the task's own atomic blocks locks nothing new.
        self._in_caller_transaction = connections[self._alias].in_atomic_block
        self._where: dict[str, Any] = {"status": Status.RUNNING, "attempts": attempt}
        if worker:
            self._where["worker"] = worker
        if started_at is not None:
            self._where["started_at"] = started_at
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._last_write: float | None = None
        self._stale = False  # a write found the row given to another attempt

    @property
    def latest(self) -> dict[str, Any] | None:
        """The latest value reported, written or not; None before the first report."""
        return self._latest

    def report(self, done: object, total: object, note: object) -> None:
        """Keep the value, and write it if this thread may and the last write is a second old."""
        value = checked(done, total, note, self.attempt)
        now = time.monotonic()
        with self._lock:
            self._latest = value
            if self._stale or threading.get_ident() != self._thread:
                # Another thread (an async task's event loop, a thread the task started)
                # keeps the value for the outcome: its connection is none the runner closes.
                return
            if self._last_write is not None and now - self._last_write < WRITE_INTERVAL:
                return
            if not self._may_write():
                return  # the next report after the transaction, or the outcome, writes it
            self._last_write = now
        # Outside the lock, so a thread the task started never waits on the database; only
        # this thread ever writes, so writes cannot overlap.
        self._write(value)

    def _may_write(self) -> bool:
        conn = connections[self._alias]
        if conn.in_atomic_block:
            # The task's own transaction: a write there would hold the row locked until it
            # commits, stalling the pool's lease renewals on PostgreSQL and MariaDB and
            # every writer on SQLite.
            return self._in_caller_transaction
        # A task that turned autocommit off would take the write into its transaction too.
        return conn.connection is None or conn.get_autocommit()

    def _write(self, value: dict[str, Any]) -> None:
        conn = connections[self._alias]
        try:
            if conn.in_atomic_block:
                # A savepoint, so a refused write spoils only itself, not the caller's transaction.
                with transaction.atomic(using=self._alias):
                    written = update_row(Task, self._alias, self.task_id, self._where, {"progress": value})
            else:
                written = update_row(Task, self._alias, self.task_id, self._where, {"progress": value})
        except Error as exc:
            # Progress is for show: the task goes on, and the next report tries again.
            logger.warning(
                "task=%s attempt=%s event=progress_write_failed error=%r", self.task_id, self.attempt, exc
            )
            return
        if not written:
            self._stale = True
            logger.info(
                "task=%s attempt=%s event=progress_dropped: the row belongs to another attempt now",
                self.task_id,
                self.attempt,
            )
