"""What a person does to tasks in bulk: cancel, retry, run again; and what each did.

Each function takes the task queryset it acts on and builds rows through ``qs.model``, so
that models.py offers them as ``TaskQuerySet`` methods without this module importing it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, models, router, transaction
from django.utils import timezone

from taskq import signing
from taskq.exceptions import BadTaskSignature, InvalidTask
from taskq.signals import task_enqueued
from taskq.states import FINISHED, Status
from taskq.validation import clean_arguments, runnable

TaskQS = models.QuerySet[Any]

# What the bulk transitions did, for the admin (or a command) to report ------------------

# Retry and Run again re-sign a task that the worker refused for its signature, and only
# such a task: whoever acts on it vouches for a row whose key was rotated away.
REFUSED_PREFIX = BadTaskSignature.__name__
SIGNED_FIELDS = ("path", "args", "kwargs", "uid", "signature")
RETRIED_BY_LENGTH = 255  # Task.retried_by's max_length


@dataclass(frozen=True)
class Cancellation:
    """What TaskQuerySet.cancel() did to each task it was given."""

    cancelled: int  # were queued, now cancelled
    stopping: int  # were running, now asked to stop
    already_stopping: int  # running, and asked to stop before
    finished: int  # had finished already, and were left as they were
    at: datetime


@dataclass
class Requeued:
    """What TaskQuerySet.retry() or run_again() queued, and how re-signing refused tasks went."""

    queued: int = 0
    resigned: int = 0
    not_resigned: list[tuple[int, str]] = field(default_factory=list)  # (task id, why it cannot run)
    key_held: list[int] = field(default_factory=list)  # not queued: a live task holds its unique key
    over_limit: bool = False  # run_again() was given more tasks than its limit, and queued none


def verifies(task: Any) -> bool:
    """Whether a task's path, arguments and uid match its signature under SECRET_KEY or a fallback."""
    return signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature)


def resign(task: Any, uid: str) -> None:
    """Sign ``task`` anew under SECRET_KEY with ``uid``, or raise InvalidTask if it cannot run."""
    runnable(task.path)
    clean_arguments(tuple(task.args), task.kwargs)
    task.uid = uid
    task.signature = signing.sign(task.path, task.args, task.kwargs, uid)


def cancel(qs: TaskQS) -> Cancellation:
    """Cancel the queued tasks now, ask the running ones to stop, and say what became of each."""
    now = timezone.now()
    cancelled = qs.filter(status=Status.QUEUED).update(status=Status.CANCELLED, finished_at=now)
    stopping = qs.filter(status=Status.RUNNING, cancel_requested=False).update(cancel_requested=True)
    # Read after the updates: a task claimed between them was asked to stop, and one that
    # finished in the meantime is counted as finished, not as cancelled.
    left = dict(
        qs.filter(status__in=[Status.RUNNING, *FINISHED])
        .order_by()
        .values_list("status")
        .annotate(n=models.Count("pk"))
        .values_list("status", "n")
    )
    finished = sum(left.get(s, 0) for s in FINISHED)
    return Cancellation(
        cancelled=cancelled,
        stopping=stopping,
        already_stopping=max(left.get(Status.RUNNING, 0) - stopping, 0),
        finished=max(finished - cancelled, 0),
        at=now,
    )


def retry(qs: TaskQS, by: str) -> Requeued:
    """Queue the failed and cancelled tasks again with a fresh attempt budget, keeping their history."""
    retryable = qs.filter(status__in=[Status.FAILED, Status.CANCELLED])
    done = Requeued()
    using = router.db_for_write(qs.model)
    with transaction.atomic(using=using):
        for task in retryable.filter(error__startswith=REFUSED_PREFIX).only(*SIGNED_FIELDS):
            if verifies(task):
                continue
            try:
                resign(task, task.uid or secrets.token_hex(16))
            except InvalidTask as exc:
                done.not_resigned.append((task.pk, str(exc)))
                continue
            qs.model._base_manager.filter(pk=task.pk).update(uid=task.uid, signature=task.signature)
            done.resigned += 1
        # enqueued_at and history stay: the task keeps its place in the list and the
        # record of the attempts that failed; error and traceback are the last attempt's.
        changes: dict[str, Any] = {
            "status": Status.QUEUED,
            "attempts": 0,
            "run_after": timezone.now(),
            "started_at": None,
            "finished_at": None,
            "lease_expires_at": None,
            "worker": "",
            "cancel_requested": False,
            "result": None,
            "error": "",
            "traceback": "",
            "retried_by": by[:RETRIED_BY_LENGTH],
        }
        done.queued = retryable.filter(unique_key__isnull=True).update(**changes)
        # A task with a unique key goes back only if no live task holds that key now, which
        # the constraint decides row by row; a savepoint keeps a refusal from spoiling the rest.
        for pk in retryable.filter(unique_key__isnull=False).order_by("-pk").values_list("pk", flat=True):
            try:
                with transaction.atomic(using=using):
                    done.queued += qs.model._base_manager.filter(
                        pk=pk, status__in=[Status.FAILED, Status.CANCELLED]
                    ).update(**changes)
            except IntegrityError:
                done.key_held.append(pk)
    return done


def run_again(qs: TaskQS, by: str, limit: int) -> Requeued:
    """Queue a signed copy of each finished task; more than ``limit`` of them queues nothing."""
    originals = list(
        qs.filter(status__in=FINISHED)
        .order_by("pk")
        .only(*SIGNED_FIELDS, "error", "queue", "priority", "max_attempts", "timeout")[: limit + 1]
    )
    if len(originals) > limit:
        return Requeued(over_limit=True)
    done = Requeued()
    for t in originals:
        uid = secrets.token_hex(16)
        if verifies(t):
            # Each copy needs its own uid, so it is signed anew; the original's signature
            # vouched for the path and arguments.
            t.signature = signing.sign(t.path, t.args, t.kwargs, uid)
        elif t.error.startswith(REFUSED_PREFIX):
            try:
                resign(t, uid)
                done.resigned += 1
            except InvalidTask as exc:
                done.not_resigned.append((t.pk, str(exc)))
        # Anything else keeps its signature, which matches no uid: a row forged in the
        # database stays refused, however often it is run again.
        t.uid = uid
    now = timezone.now()
    copies = qs.model._base_manager.bulk_create(
        qs.model(
            path=t.path,
            args=t.args,
            kwargs=t.kwargs,
            signature=t.signature,
            uid=t.uid,
            queue=t.queue,
            priority=t.priority,
            max_attempts=t.max_attempts,
            timeout=t.timeout,
            run_after=now,
            enqueued_at=now,
            retried_by=by[:RETRIED_BY_LENGTH],
        )
        for t in originals
    )
    for copy in copies:
        task_enqueued.send(sender=qs.model, task=copy)
    done.queued = len(copies)
    return done
