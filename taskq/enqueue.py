"""The public API for putting work on the queue: enqueue() and options()."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from taskq import signing, wake
from taskq.conf import settings
from taskq.decorators import check_unique_key, defaults_of
from taskq.exceptions import InvalidTask, NotMigrated
from taskq.signals import task_enqueued
from taskq.statements import insert_row
from taskq.validation import check_call, check_options, check_seconds, clean_arguments, task_path

if TYPE_CHECKING:
    from taskq.models import Task

logger = logging.getLogger("taskq")

# The unique constraint on Task.unique_live, which holds a key only while its task is live.
LIVE_CONSTRAINT = "taskq_unique_live"
# Tries at inserting a keyed task: a holder may finish between a refused INSERT and the read
# that looks for it, and then the key is free for the next try.
UNIQUE_TRIES = 3


@dataclass(frozen=True)
class Options:
    """Per-call options; build with ``taskq.options(...)`` and call ``.enqueue(fn, ...)``."""

    delay: float | timedelta | None = None
    run_at: datetime | None = None
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    unique_key: str | None = None

    def __post_init__(self) -> None:
        check_options(self.queue, self.priority, self.max_attempts, self.timeout)
        check_unique_key(self.unique_key)
        if self.delay is not None and self.run_at is not None:
            raise InvalidTask("pass delay or run_at, not both.")
        if self.delay is not None:
            check_seconds("delay", self.delay, allow_zero=True)
        if self.run_at is not None and (
            not isinstance(self.run_at, datetime) or timezone.is_naive(self.run_at)
        ):
            raise InvalidTask(
                f"run_at must be an aware datetime, not {self.run_at!r}: use "
                "django.utils.timezone.now() + timedelta(...)."
            )

    def _delay_seconds(self) -> float:
        return check_seconds("delay", self.delay, allow_zero=True)

    def options(self, **changes: Any) -> Options:
        """Return a copy with some options changed."""
        return replace(self, **changes)

    def build(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, uid: str | None = None
    ) -> Task:
        """Check a call of ``fn`` and return its signed, unsaved row; ``uid`` defaults to a random one."""
        from taskq.models import Task

        path = task_path(fn)
        check_call(fn, args, kwargs)
        clean_args, clean_kwargs = clean_arguments(args, kwargs)
        fn_defaults = defaults_of(fn)
        now = timezone.now()
        if self.run_at is not None:
            run_after = self.run_at
        elif self.delay is not None:
            run_after = now + timedelta(seconds=self._delay_seconds())
        else:
            run_after = now
        uid = uid or secrets.token_hex(16)
        return Task(
            path=path,
            args=clean_args,
            kwargs=clean_kwargs,
            uid=uid,
            signature=signing.sign(path, clean_args, clean_kwargs, uid),
            queue=_first(self.queue, fn_defaults.queue, settings.default_queue),
            priority=_first(self.priority, fn_defaults.priority, settings.default_priority),
            max_attempts=_first(self.max_attempts, fn_defaults.max_attempts, settings.default_max_attempts),
            timeout=_first(self.timeout, fn_defaults.timeout, settings.default_timeout),
            run_after=run_after,
            enqueued_at=now,
            unique_key=_first(self.unique_key, fn_defaults.key_for(args, kwargs)),
        )

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Task:
        """Store a call of ``fn`` as a queued Task in one INSERT and return the row.

        With a unique key held by a queued or running task, return that task instead,
        with ``created`` False; a stored task has ``created`` True.
        """
        from taskq.models import Task

        task = self.build(fn, args, kwargs)
        unique_key = task.unique_key
        using = router.db_for_write(Task)
        try:
            if unique_key is None:
                # One cached INSERT: the ORM's save() spent more CPU building it than the database
                # spent running it, in the caller's request.
                insert_row(task, using)
            else:
                task = _insert_or_holder(task, using)
                if not task.created:
                    logger.debug("task=%s unique_key=%s event=already_live", task.pk, unique_key)
                    return task
        except DatabaseError as exc:
            if _table_missing(exc, using):
                raise NotMigrated(
                    f"the {Task._meta.db_table} table does not exist in the {using!r} database: "
                    "run manage.py migrate."
                ) from exc
            raise
        task.created = True
        # Robust: the row is written (and, in autocommit, committed), so a receiver that
        # raises must not make the caller believe it was not, nor skip the wake below.
        for receiver, error in task_enqueued.send_robust(sender=Task, task=task):
            if isinstance(error, Exception):
                logger.error("task=%s event=signal_error receiver=%r error=%r", task.pk, receiver, error)
        transaction.on_commit(lambda: _committed(task), using=using)
        return task


def _insert_or_holder(task: Task, using: str) -> Task:
    # The database decides who holds the key, so racing callers in any process agree. The
    # common case is one INSERT, with no savepoint, and the caller's transaction survives
    # a refusal: PostgreSQL and SQLite skip the row (ON CONFLICT DO NOTHING), and a
    # duplicate key on MariaDB undoes only its own statement.
    from taskq.models import Task

    assert task.unique_key is not None
    for _ in range(UNIQUE_TRIES):
        if insert_row(task, using, unique=("unique_live", LIVE_CONSTRAINT)):
            task.created = True
            return task
        holder = Task.objects.using(using).filter(unique_live=task.unique_key).first()
        if holder is None and connections[using].in_atomic_block:
            # Under REPEATABLE READ (InnoDB's own default, where a site sets it) a plain read
            # sees the caller's snapshot, which may predate the holder; a locking read sees
            # the newest committed row. Under READ COMMITTED the plain read already found it.
            holder = Task.objects.using(using).select_for_update().filter(unique_live=task.unique_key).first()
        if holder is not None:
            holder.created = False
            return holder
    raise IntegrityError(
        f"could not insert a task with unique_key={task.unique_key!r} nor find the live task "
        f"holding it after {UNIQUE_TRIES} tries: is something finishing and enqueueing that key "
        "in a tight loop?"
    )


def _table_missing(exc: DatabaseError, using: str) -> bool:
    from taskq.models import Task

    table = Task._meta.db_table
    conn = connections[using]
    if not conn.needs_rollback:
        try:
            return table not in conn.introspection.table_names()
        except DatabaseError:
            pass
    # Inside a broken transaction no query can run, so read the driver's message instead.
    return table in str(exc) and any(
        words in str(exc) for words in ("no such table", "does not exist", "doesn't exist")
    )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _committed(task: Task) -> None:
    # Runs after the caller's transaction commits, so a rolled-back enqueue never runs.
    if settings.immediate:
        from taskq.immediate import run_immediately

        run_immediately(task)
    else:
        wake.task_committed()


def options(
    *,
    delay: float | timedelta | None = None,
    run_at: datetime | None = None,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    unique_key: str | None = None,
) -> Options:
    """Return per-call options, e.g. ``options(delay=30).enqueue(fn, x)``."""
    # unique_key: while a queued or running task holds the key, enqueue() returns that task.
    return Options(delay, run_at, queue, priority, max_attempts, timeout, unique_key)


def enqueue(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Task:
    """Store a call of ``fn(*args, **kwargs)`` as a queued Task and return the row."""
    return Options().enqueue(fn, *args, **kwargs)
