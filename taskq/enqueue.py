"""The public API for putting work on the queue: enqueue() and options()."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from taskq import signing
from taskq.conf import settings
from taskq.decorators import defaults_of
from taskq.exceptions import InvalidTask, NotMigrated
from taskq.signals import task_enqueued
from taskq.statements import insert_row
from taskq.validation import check_call, check_options, check_seconds, clean_arguments, task_path

if TYPE_CHECKING:
    from taskq.models import Task


@dataclass(frozen=True)
class Options:
    """Per-call options; build with ``taskq.options(...)`` and call ``.enqueue(fn, ...)``."""

    delay: float | timedelta | None = None
    run_at: datetime | None = None
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_options(self.queue, self.priority, self.max_attempts, self.timeout)
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

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Task:
        """Store a call of ``fn`` as a queued Task in one INSERT and return the row."""
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
        timeout = _first(self.timeout, fn_defaults.timeout, settings.default_timeout)
        uid = secrets.token_hex(16)
        task = Task(
            path=path,
            args=clean_args,
            kwargs=clean_kwargs,
            uid=uid,
            signature=signing.sign(path, clean_args, clean_kwargs, uid),
            queue=_first(self.queue, fn_defaults.queue, settings.default_queue),
            priority=_first(self.priority, fn_defaults.priority, settings.default_priority),
            max_attempts=_first(self.max_attempts, fn_defaults.max_attempts, settings.default_max_attempts),
            timeout=timeout,
            run_after=run_after,
            enqueued_at=now,
        )
        using = router.db_for_write(Task)
        try:
            # One cached INSERT: the ORM's save() spent more CPU building it than the database
            # spent running it, in the caller's request.
            insert_row(task, using)
        except DatabaseError as exc:
            if _table_missing(exc, using):
                raise NotMigrated(
                    f"the {Task._meta.db_table} table does not exist in the {using!r} database: "
                    "run manage.py migrate."
                ) from exc
            raise
        task_enqueued.send(sender=Task, task=task)
        transaction.on_commit(lambda: _committed(task), using=using)
        return task


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
        from taskq import process

        process.notify()


def options(
    *,
    delay: float | timedelta | None = None,
    run_at: datetime | None = None,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> Options:
    """Return per-call options, e.g. ``options(delay=30).enqueue(fn, x)``."""
    return Options(delay, run_at, queue, priority, max_attempts, timeout)


def enqueue(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Task:
    """Store a call of ``fn(*args, **kwargs)`` as a queued Task and return the row."""
    return Options().enqueue(fn, *args, **kwargs)
