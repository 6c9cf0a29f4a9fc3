"""How an attempt ended, and writing it so that a task never runs again for want of a stored outcome."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from taskq.bounds import MAX_HISTORY_TRACEBACK_CHARS, head_and_tail, one_line
from taskq.conf import settings
from taskq.context import current_task
from taskq.exceptions import ErrorNotStorable, ResultNotStorable
from taskq.features import refused_data_errors
from taskq.models import Status, Task

logger = logging.getLogger("taskq")

FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0


@dataclass(frozen=True)
class Outcome:
    """What one attempt ended with: the row's next status and what to record."""

    status: Status
    kind: str  # the history entry's outcome: succeeded, retried, failed, timed_out, ...
    result: Any = None
    error: str = ""
    exception: str = ""
    traceback: str = ""
    delay: float = 0.0
    reduced: bool = False  # already the short form written when the full one was refused


def class_path(exc: BaseException) -> str:
    """Return the dotted path of ``exc``'s class, as Django's Tasks API reports it."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException) -> str:
    """Return ``ClassName: message`` on one bounded line, even when ``str(exc)`` raises."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception as inner:  # noqa: BLE001 - a broken __str__ must not lose the failure
        return one_line(f"{ErrorNotStorable.__name__}: {name} whose message raised {type(inner).__name__}")
    return one_line(f"{name}: {message}" if message else name)


def succeeded(result: Any) -> Outcome:
    """The outcome of an attempt that returned ``result``."""
    return Outcome(Status.SUCCEEDED, "succeeded", result=result)


def failed(exc: BaseException, trace: str, retry_delay: float | None, kind: str = "") -> Outcome:
    """The outcome of an attempt that raised ``exc``; ``retry_delay`` None means no retry."""
    retry = retry_delay is not None
    return Outcome(
        Status.QUEUED if retry else Status.FAILED,
        kind or ("retried" if retry else "failed"),
        error=describe(exc),
        exception=class_path(exc),
        traceback=head_and_tail(trace),
        delay=retry_delay or 0.0,
    )


def result_not_storable(reason: str, trace: str = "") -> Outcome:
    """The outcome of an attempt whose return value can never be stored: final, no retry."""
    exc = ResultNotStorable(reason)
    return Outcome(
        Status.FAILED,
        "failed",
        error=describe(exc),
        exception=class_path(exc),
        traceback=head_and_tail(trace),
    )


def check_storable_result(result: Any) -> str | None:
    """Return why ``result`` cannot be stored as JSON within the size limit, or None if it can."""
    try:
        encoded = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    size, limit = len(encoded.encode("utf-8", "surrogatepass")), settings.max_result_bytes
    if size > limit:
        return (
            f"the return value takes {size} bytes as JSON, over the TASKQ_MAX_RESULT_BYTES limit of "
            f"{limit}: store large results in a model or a file and return its key"
        )
    return None


def history_entry(task: Task, outcome: Outcome) -> dict[str, Any]:
    """The attempt's entry in ``Task.history``."""
    return {
        "attempt": task.attempts,
        "worker": task.worker,
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "finished_at": timezone.now().isoformat(),
        "outcome": outcome.kind,
        "error": outcome.error,
        "exception": outcome.exception,
        "traceback": head_and_tail(outcome.traceback, MAX_HISTORY_TRACEBACK_CHARS),
    }


def _apply(task: Task, outcome: Outcome) -> bool:
    entry = history_entry(task, outcome)
    # The attempt's last progress rides along, so a value reported within a second of the
    # last write is not lost; the short form leaves it out in case it was what was refused.
    last = None if outcome.reduced else _final_progress(task)
    if outcome.status == Status.SUCCEEDED:
        return task.set_succeeded(outcome.result, entry=entry, progress=last)
    if outcome.status == Status.QUEUED:
        return task.set_retrying(outcome.error, outcome.traceback, outcome.delay, entry=entry, progress=last)
    return task.set_failed(outcome.error, outcome.traceback, entry=entry, progress=last)


def _final_progress(task: Task) -> dict[str, Any] | None:
    """The latest progress this thread's attempt of ``task`` reported, to write with its outcome."""
    context = current_task()
    if context is None or context.task_id != task.pk or context.attempt != task.attempts:
        return None  # the dispatcher recording a timeout, or a row this thread does not run
    return context.latest_progress


def _reduced(outcome: Outcome, exc: BaseException) -> Outcome:
    """The short form of ``outcome`` to write once the database refused the full one."""
    reason = describe(exc)
    if outcome.status == Status.SUCCEEDED:
        return replace(result_not_storable(f"the database refused the return value ({reason})"), reduced=True)
    # The task's failure still decides whether it runs again; only its text is dropped.
    what = ErrorNotStorable(f"{outcome.error[:200]} (the database refused the error text: {reason})")
    return replace(outcome, error=describe(what), exception=outcome.exception, traceback="", reduced=True)


def _is_connection_problem(exc: BaseException, conn: BaseDatabaseWrapper) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    # PostgreSQL says which in the SQLSTATE: class 22 (data exception) and 54 (a program
    # limit, such as a value too large) are the data's; 08 and 57P the connection's.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in {"22", "54"}:
        return False
    # Any OperationalError not known as refused data is taken for the connection's, and
    # retried: wrongly failing a task that succeeded would be worse than one more write.
    return not (exc.args and exc.args[0] in refused_data_errors(conn))


def _fresh(conn: BaseDatabaseWrapper) -> bool:
    """Drop ``conn`` so the next statement opens a new one; False inside a transaction we don't own."""
    if conn.in_atomic_block:
        return False
    # Closing a dead connection may raise; it is gone either way.
    with contextlib.suppress(Exception):
        conn.close()
    return True


def _settle(conn: BaseDatabaseWrapper) -> None:
    # A job that turned autocommit off and left its transaction open would otherwise carry
    # the outcome into that transaction, and the cleanup after the job would roll it back.
    if conn.connection is not None and not conn.in_atomic_block and not conn.get_autocommit():
        _fresh(conn)


def _write_once(task: Task, outcome: Outcome, conn: BaseDatabaseWrapper) -> bool:
    if not conn.in_atomic_block:
        _settle(conn)
        return _apply(task, outcome)
    # Inside the caller's transaction (immediate mode, run_due() in a test): a refused
    # statement must spoil only its own savepoint, so the short form can still be written.
    with transaction.atomic(using=conn.alias):
        return _apply(task, outcome)


def write(task: Task, outcome: Outcome) -> bool:
    """Record ``outcome`` for ``task``'s current attempt; False if the row was no longer ours.

    A value or text the database refuses becomes a short failure instead. A lost connection
    is retried on a fresh one with a bounded back-off, well within the lease; only when that
    runs out does this raise, leaving the row for lease recovery.
    """
    conn = connections[router.db_for_write(Task, instance=task)]
    deadline = time.monotonic() + settings.outcome_retry_seconds
    pause = FIRST_PAUSE
    while True:
        try:
            return _write_once(task, outcome, conn)
        except (DatabaseError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            if isinstance(exc, DatabaseError) and _is_connection_problem(exc, conn):
                if time.monotonic() + pause > deadline or not _fresh(conn):
                    raise
                logger.warning(
                    "task=%s event=outcome_retry pause=%.2f error=%r", task.pk, pause, describe(exc)
                )
                time.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)
                # A lost connection is never taken for refused data, however often it comes
                # back: MariaDB also drops one over a statement larger than max_allowed_packet,
                # which TASKQ_MAX_RESULT_BYTES and the bounded error text keep outcomes under.
                continue
            if outcome.reduced:
                raise
            logger.error("task=%s path=%s event=outcome_refused error=%r", task.pk, task.path, describe(exc))
            if isinstance(exc, DatabaseError):
                _fresh(conn)
            outcome = _reduced(outcome, exc)
