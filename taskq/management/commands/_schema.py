"""Turn a database error in a taskq command into a CommandError that says what to do."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DatabaseError

from taskq.pool import missing_tables


def explain(exc: DatabaseError, doing: str) -> CommandError:
    """A CommandError for ``exc``: "run migrate" when taskq's tables are missing, else the error."""
    missing = missing_tables()
    if missing:
        return CommandError(
            f"taskq's tables ({', '.join(missing)}) do not exist: run manage.py migrate first."
        )
    return CommandError(f"{doing}: {exc}")
