"""System checks for the TASKQ_* settings and the server taskq runs in. Ids are stable."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.conf import DEFAULTS, MAX_CLAIM_AHEAD, MAX_WORKERS, settings
from taskq.features import features
from taskq.models import Task


def _int(minimum: int, maximum: int | None = None) -> Callable[[Any], bool]:
    return lambda v: (
        isinstance(v, int) and not isinstance(v, bool) and minimum <= v and (maximum is None or v <= maximum)
    )


def _seconds(allow_none: bool, allow_zero: bool = False) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if v is None:
            return allow_none
        if isinstance(v, timedelta):
            v = v.total_seconds()
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return False
        return v >= 0 if allow_zero else v > 0

    return ok


def _queues(v: Any) -> bool:
    return v is None or (
        isinstance(v, (list, tuple)) and bool(v) and all(isinstance(q, str) and q for q in v)
    )


# (setting, id, validator, what it must be)
RULES: list[tuple[str, str, Callable[[Any], bool], str]] = [
    ("TASKQ_WORKERS", "taskq.E001", _int(1, MAX_WORKERS), f"an int from 1 to {MAX_WORKERS}"),
    ("TASKQ_POLL_INTERVAL", "taskq.E002", _seconds(False), "a positive number of seconds"),
    ("TASKQ_QUEUES", "taskq.E003", _queues, "None (every queue) or a non-empty list of queue names"),
    ("TASKQ_DEFAULT_MAX_ATTEMPTS", "taskq.E004", _int(1), "an int of at least 1"),
    ("TASKQ_LEASE_SECONDS", "taskq.E005", _seconds(False), "a positive number of seconds"),
    ("TASKQ_RETRY_BACKOFF_BASE", "taskq.E006", _seconds(False, True), "a number of seconds, 0 or more"),
    ("TASKQ_RETRY_BACKOFF_MAX", "taskq.E007", _seconds(False, True), "a number of seconds, 0 or more"),
    ("TASKQ_RETENTION", "taskq.E008", _seconds(True), "None (keep forever), seconds or a timedelta"),
    ("TASKQ_AUTOSTART", "taskq.E009", lambda v: v in (None, True, False), "None (detect), True or False"),
    ("TASKQ_DEFAULT_TIMEOUT", "taskq.E010", _seconds(True), "None (no timeout) or positive seconds"),
    ("TASKQ_MAX_ARGS_BYTES", "taskq.E011", _int(1), "a positive int"),
    ("TASKQ_SHUTDOWN_GRACE", "taskq.E012", _seconds(False, True), "a number of seconds, 0 or more"),
    ("TASKQ_PRUNE_INTERVAL", "taskq.E013", _seconds(False), "a positive number of seconds"),
    ("TASKQ_MAX_ABANDONED_THREADS", "taskq.E014", _int(0), "an int, 0 or more"),
    ("TASKQ_IMMEDIATE", "taskq.E015", lambda v: isinstance(v, bool), "True or False"),
    ("TASKQ_DEFAULT_QUEUE", "taskq.E016", lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    ("TASKQ_DEFAULT_PRIORITY", "taskq.E017", _int(-(2**31)), "an int"),
    ("TASKQ_LISTEN", "taskq.E029", lambda v: v in (None, True, False), "None (automatic), True or False"),
    ("TASKQ_MAX_RESULT_BYTES", "taskq.E030", _int(1), "a positive int"),
    ("TASKQ_CLAIM_AHEAD", "taskq.E031", _int(0, MAX_CLAIM_AHEAD), f"an int from 0 to {MAX_CLAIM_AHEAD}"),
]


@register("taskq")
def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Report TASKQ_* settings of the wrong type or range, and unknown TASKQ_* names."""
    messages: list[CheckMessage] = []
    for name, check_id, valid, expected in RULES:
        value = settings.get(name)
        if not valid(value):
            messages.append(Error(f"{name} is {value!r}; it must be {expected}.", id=check_id))
    if not messages and settings.backoff_base > settings.backoff_max:
        messages.append(
            Error(
                "TASKQ_RETRY_BACKOFF_BASE is larger than TASKQ_RETRY_BACKOFF_MAX.",
                hint="Raise the maximum or lower the base.",
                id="taskq.E018",
            )
        )
    for name in dir(django_settings):
        if name.startswith("TASKQ_") and name not in DEFAULTS:
            messages.append(
                Warning(
                    f"{name} is not a taskq setting and has no effect.",
                    hint="Check the spelling against the README's list of settings.",
                    id="taskq.W001",
                )
            )
    return messages


@register("taskq")
def check_uwsgi_threads(**kwargs: Any) -> list[CheckMessage]:
    """Under uWSGI, the pool's threads never run unless threads are enabled."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None or settings.autostart is False:
        return []
    opts = getattr(uwsgi, "opt", {})
    if opts.get("enable-threads") or opts.get("threads"):
        return []
    return [
        Error(
            "uWSGI is running without threads, so taskq's pool would never run.",
            hint="Start uWSGI with --enable-threads (and --lazy-apps), or set "
            "TASKQ_AUTOSTART = False and run manage.py taskq_worker.",
            id="taskq.E020",
        )
    ]


def _max_connections(conn: BaseDatabaseWrapper) -> int | None:
    query = features(conn).max_connections_query
    if query is None:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
    except DatabaseError:
        return None  # unreachable or not allowed: other checks report an outage
    return int(row[0]) if row else None


@register("taskq", Tags.database)
def check_connection_limit(databases: Collection[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when one process's pool alone could use up the database server's connections."""
    # Tagged database: Django passes the aliases only under check --database and migrate,
    # so a plain check (or a web process starting) never queries the server.
    workers = settings.get("TASKQ_WORKERS")
    alias = router.db_for_write(Task)
    if databases is None or alias not in databases or not _int(1)(workers):
        return []
    limit = _max_connections(connections[alias])
    # One connection per runner and one for the dispatcher; the site's own requests need
    # at least one more.
    need = workers + 1
    if limit is None or need < limit:
        return []
    return [
        Warning(
            f"TASKQ_WORKERS is {workers}, so each process that runs a pool holds up to {need} "
            f"connections to database {alias!r}, whose server allows {limit} in all.",
            hint="Lower TASKQ_WORKERS (or taskq_worker --workers), or raise the server's "
            "max_connections; count every process that runs a pool.",
            id="taskq.W002",
        )
    ]
