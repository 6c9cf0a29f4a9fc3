"""Run exactly one claimed task and record its outcome. The pool only decides when."""

from __future__ import annotations

import inspect
import logging
import random
import threading
import traceback as tb
from typing import Any

from asgiref.sync import async_to_sync
from django.utils import timezone
from django.utils.module_loading import import_string

from taskq import signing
from taskq.conf import settings
from taskq.context import TaskContext, _current
from taskq.exceptions import GiveUp, InvalidTask, Retry, TaskTimeout
from taskq.models import Status, Task
from taskq.signals import task_finished, task_started
from taskq.validation import check_result

logger = logging.getLogger("taskq")


def backoff(attempt: int) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt``."""
    # The exponent is capped before the power: 2**1100 no longer fits in a float, and a
    # task with thousands of attempts must still get a delay, not an OverflowError.
    exponent = min(max(attempt - 1, 0), 64)
    ceiling = min(settings.backoff_max, settings.backoff_base * 2**exponent)
    # Jitter spreads retries of a batch that failed together, e.g. during an API outage.
    return float(ceiling * random.uniform(0.5, 1.0))  # noqa: S311 - not for security


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def record_failure(task: Task, exc: BaseException, trace: str, retry_delay: float | None) -> None:
    """Queue another attempt if one is left and wanted, else fail the task for good."""
    error = _describe(exc)
    if retry_delay is not None and task.attempts < task.max_attempts:
        task.set_retrying(error, trace, retry_delay)
        if task.status == Status.CANCELLED:
            logger.info("task=%s path=%s event=cancelled error=%r", task.pk, task.path, error)
            return
        logger.warning(
            "task=%s path=%s attempt=%s/%s event=retry delay=%.1f error=%r",
            task.pk,
            task.path,
            task.attempts,
            task.max_attempts,
            retry_delay,
            error,
        )
    else:
        task.set_failed(error, trace)
        logger.error(
            "task=%s path=%s attempt=%s/%s event=failed error=%r",
            task.pk,
            task.path,
            task.attempts,
            task.max_attempts,
            error,
        )


def record_timeout(task: Task) -> None:
    """Record that ``task`` outran its timeout; its thread has been abandoned."""
    exc = TaskTimeout(f"ran longer than its timeout of {task.timeout:g}s")
    record_failure(task, exc, "", backoff(task.attempts))


def _call(task: Task) -> Any:
    fn = import_string(task.path)
    if inspect.iscoroutinefunction(fn):
        # async_to_sync runs the coroutine on its own loop and sends sync_to_async ORM
        # calls back to this thread, whose connections the pool cleans up.
        return async_to_sync(fn)(*task.args, **task.kwargs)
    return fn(*task.args, **task.kwargs)


def run_task(task: Task, cancel_event: threading.Event | None = None) -> Task:
    """Run a task the caller has claimed (status running) and save its outcome."""
    if not signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature):
        task.set_failed(
            "BadTaskSignature: the path and arguments do not match their signature, so the "
            "row was not written by taskq with this SECRET_KEY; refusing to run it"
        )
        logger.error("task=%s path=%s event=bad_signature", task.pk, task.path)
        task_finished.send(sender=Task, task=task)
        return task
    context = TaskContext(task.pk, task.attempts, task.max_attempts, cancel_event or threading.Event())
    token = _current.set(context)
    task_started.send(sender=Task, task=task)
    logger.info("task=%s path=%s attempt=%s event=started", task.pk, task.path, task.attempts)
    try:
        result = _call(task)
        check_result(result)
    except Retry as exc:
        delay = exc.delay if exc.delay is not None else backoff(task.attempts)
        record_failure(task, exc, tb.format_exc(), delay)
    except (GiveUp, InvalidTask) as exc:
        record_failure(task, exc, tb.format_exc(), None)
    except Exception as exc:  # noqa: BLE001 - any error in user code is the task's outcome
        record_failure(task, exc, tb.format_exc(), backoff(task.attempts))
    except BaseException as exc:
        # SystemExit or KeyboardInterrupt from inside a task: record it, then let it
        # propagate so the thread or process stops as its raiser intended.
        record_failure(task, exc, tb.format_exc(), None)
        raise
    else:
        task.set_succeeded(result)
        logger.info("task=%s path=%s event=%s", task.pk, task.path, task.status)
    finally:
        _current.reset(token)
        task_finished.send(sender=Task, task=task)
    return task


def run_immediately(task: Task) -> Task:
    """Immediate mode: run a committed task now in this thread, and again while a retry is due."""
    from taskq.immediate import IMMEDIATE, claim, run_claimed  # it imports this module

    # A task enqueued with a delay, or a retry with a backoff, is not due yet: it stays
    # queued, as it would for a pool, until run_due() or a pool picks it up.
    while task.run_after <= timezone.now() and claim(task, IMMEDIATE):
        run_claimed(task)
        if task.status != Status.QUEUED:
            break
    return task
