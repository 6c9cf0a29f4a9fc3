"""A task's states, and the record of its attempts that every transition appends to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from taskq.exceptions import WorkerLost


class Status(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
WORKER_LOST = (
    "WorkerLost: the lease lapsed before the outcome was recorded: the process running this "
    "task died, or lost the database until the lease expired"
)
# Task.history keeps the first attempt and the latest ones, so a row stays small.
MAX_HISTORY = 20


def appended(history: list[dict[str, Any]] | None, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Return ``history`` with ``entry`` added, trimmed to the first and the latest entries."""
    entries = [*(history or []), entry]
    if len(entries) > MAX_HISTORY:
        entries = [entries[0], *entries[-(MAX_HISTORY - 1) :]]
    return entries


def lost_entry(attempt: int, pool: str, started_at: datetime | None, now: datetime) -> dict[str, Any]:
    """The history entry of an attempt whose lease lapsed before it recorded an outcome."""
    return {
        "attempt": attempt,
        "worker": pool,
        "started_at": started_at.isoformat() if started_at else None,
        "finished_at": now.isoformat(),
        "outcome": "lost",
        "error": WORKER_LOST,
        "exception": f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        "traceback": "",
    }
