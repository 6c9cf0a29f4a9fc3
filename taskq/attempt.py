"""Run exactly one claimed task and record its outcome. The pool only decides when."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import random
import threading
import traceback as tb
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.db import DatabaseError, connections, router, transaction
from django.dispatch import Signal
from django.utils.module_loading import import_string

from taskq import outcome, signing
from taskq.conf import settings
from taskq.context import TaskContext, _current
from taskq.exceptions import BadTaskSignature, GiveUp, InvalidTask, Retry, TaskTimeout
from taskq.models import Status, Task
from taskq.signals import task_finished, task_started
from taskq.validation import check_result, runnable

logger = logging.getLogger("taskq")

# A Retry may ask for at most this long (ten years): beyond it a datetime overflows.
MAX_RETRY_DELAY = 10 * 365 * 24 * 3600.0


def backoff(attempt: int) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt``."""
    # The exponent is capped before the power: 2**1100 no longer fits in a float, and a
    # task with thousands of attempts must still get a delay, not an OverflowError.
    exponent = min(max(attempt - 1, 0), 64)
    ceiling = min(settings.backoff_max, settings.backoff_base * 2**exponent)
    # Jitter spreads retries of a batch that failed together, e.g. during an API outage.
    return float(ceiling * random.uniform(0.5, 1.0))  # noqa: S311 - not for security


def record(task: Task, result: outcome.Outcome) -> None:
    """Write an attempt's outcome and log it; a retry past the last attempt fails instead."""
    if result.status == Status.QUEUED and task.attempts >= task.max_attempts:
        result = outcome.Outcome(
            Status.FAILED,
            "failed" if result.kind == "retried" else result.kind,
            error=result.error,
            exception=result.exception,
            traceback=result.traceback,
        )
    outcome.write(task, result)
    if task.status == Status.CANCELLED:
        logger.info("task=%s path=%s event=cancelled error=%r", task.pk, task.path, task.error)
    elif task.status == Status.QUEUED:
        logger.warning(
            "task=%s path=%s attempt=%s/%s event=retry delay=%.1f error=%r",
            task.pk,
            task.path,
            task.attempts,
            task.max_attempts,
            result.delay,
            task.error,
        )
    elif task.status == Status.FAILED:
        logger.error(
            "task=%s path=%s attempt=%s/%s event=failed error=%r",
            task.pk,
            task.path,
            task.attempts,
            task.max_attempts,
            task.error,
        )
    else:
        logger.info("task=%s path=%s event=%s", task.pk, task.path, task.status)


def record_failure(task: Task, exc: BaseException, trace: str, retry_delay: float | None) -> None:
    """Queue another attempt if one is left and wanted, else fail the task for good."""
    record(task, outcome.failed(exc, trace, retry_delay))


def record_timeout(task: Task) -> None:
    """Record that ``task`` outran its timeout; its thread has been abandoned."""
    exc = TaskTimeout(f"ran longer than its timeout of {task.timeout:g}s")
    record(task, outcome.failed(exc, "", backoff(task.attempts), kind="timed_out"))


def record_cancelled_unstarted(task: Task) -> None:
    """Record that ``task``, claimed ahead and asked to stop, was cancelled before it started."""
    # Its row carries cancel_requested, so the write ends it cancelled, as a queued task's
    # cancel does; like that one, it sends no signal, since no attempt started.
    record(task, outcome.Outcome(Status.FAILED, "cancelled", error="Cancelled before a thread started it"))


@functools.lru_cache(maxsize=256)
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn)


def _call(task: Task) -> Any:
    # An ImportError stays retryable: a rolling deploy may not have reached this process yet.
    import_string(task.path)
    # Checked again although the signature matched: should the key leak, a forged row
    # still cannot name a class, a builtin or anything but a module-level function.
    fn = runnable(task.path)
    try:
        _signature(fn).bind(*task.args, **task.kwargs)
    except TypeError as exc:
        # Checked before the call, so a TypeError from inside the task is still an
        # ordinary, retryable failure, while a call that cannot even start is final.
        raise InvalidTask(
            f"the stored arguments do not fit {task.path}(): {exc}. Enqueue it again "
            "with arguments that match, or deploy a version of the function that accepts these."
        ) from None
    if inspect.iscoroutinefunction(fn):
        # async_to_sync runs the coroutine on its own loop and sends sync_to_async ORM
        # calls back to this thread, whose connections the pool cleans up.
        return async_to_sync(fn)(*task.args, **task.kwargs)
    return fn(*task.args, **task.kwargs)


def _retry_delay(task: Task, exc: Retry) -> float | None:
    """The delay a Retry asked for, or None if it asked for one no clock can hold."""
    if exc.delay is None:
        return backoff(task.attempts)
    delay = exc.delay
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay):
        return None
    if not 0 <= delay <= MAX_RETRY_DELAY:
        return None
    return float(delay)


def _attempt(task: Task) -> outcome.Outcome:
    """Call the task's function and judge what it did, writing nothing."""
    try:
        result = _call(task)
    except Retry as exc:
        delay = _retry_delay(task, exc)
        if delay is None:
            bad = InvalidTask(
                f"Retry(delay={exc.delay!r}) is not a number of seconds between 0 and {MAX_RETRY_DELAY:g}: "
                "raise Retry with a finite delay, or GiveUp to stop."
            )
            return outcome.failed(bad, tb.format_exc(), None)
        return outcome.failed(exc, tb.format_exc(), delay)
    except (GiveUp, InvalidTask) as exc:
        return outcome.failed(exc, tb.format_exc(), None)
    except Exception as exc:  # noqa: BLE001 - any error in user code is the task's outcome
        return outcome.failed(exc, tb.format_exc(), backoff(task.attempts))
    try:
        check_result(result)
    except Exception as exc:  # noqa: BLE001 - whatever the check trips on, the value cannot be kept
        reason = str(exc) if isinstance(exc, InvalidTask) else outcome.describe(exc)
        return outcome.result_not_storable(reason, tb.format_exc())
    refused = outcome.check_storable_result(result)
    if refused is not None:
        return outcome.result_not_storable(refused)
    return outcome.succeeded(result)


def _attempt_guarded(task: Task) -> outcome.Outcome:
    conn = connections[router.db_for_write(Task, instance=task)]
    if not conn.in_atomic_block:
        return _attempt(task)
    # Inside the caller's transaction (a TestCase, or run_due() in an atomic block), a
    # database error in the task would poison that transaction and stop the outcome from
    # being written. A savepoint confines the damage to the task's own work.
    judged: list[outcome.Outcome] = []
    try:
        with transaction.atomic(using=conn.alias):
            judged.append(_attempt(task))
    except DatabaseError as exc:
        if judged and judged[0].status != Status.SUCCEEDED:
            return judged[0]  # the task's own failure, which also spoiled its savepoint
        return outcome.failed(exc, tb.format_exc(), backoff(task.attempts))
    return judged[0]


def _send(signal: Signal, task: Task) -> None:
    # A receiver that raises must not cost the task its attempt or its outcome.
    for receiver, error in signal.send_robust(sender=Task, task=task):
        if isinstance(error, Exception):
            logger.error("task=%s event=signal_error receiver=%r error=%r", task.pk, receiver, error)


def run_task(task: Task, cancel_event: threading.Event | None = None) -> Task:
    """Run a task the caller has claimed (status running) and save its outcome."""
    if not signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature):
        exc = BadTaskSignature(
            "the path and arguments do not match their signature, so the row was not written by "
            "taskq with this SECRET_KEY; refusing to run it"
        )
        logger.error("task=%s path=%s event=bad_signature", task.pk, task.path)
        record(task, outcome.failed(exc, "", None))
        _send(task_finished, task)
        return task
    context = TaskContext(
        task.pk,
        task.attempts,
        task.max_attempts,
        cancel_event or threading.Event(),
        task.worker,
        task.started_at,
    )
    token = _current.set(context)
    try:
        _send(task_started, task)
        logger.info("task=%s path=%s attempt=%s event=started", task.pk, task.path, task.attempts)
        try:
            result = _attempt_guarded(task)
        except BaseException as exc:
            # SystemExit or KeyboardInterrupt from inside a task: record it, then let it
            # propagate so the thread or process stops as its raiser intended.
            record(task, outcome.failed(exc, tb.format_exc(), None))
            raise
        record(task, result)
    finally:
        _current.reset(token)
        _send(task_finished, task)
    return task
