"""A job is one Task of check_link; this is how the pages find and describe them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone

from demo_site.linkcheck.tasks import check_link
from taskq.models import FINISHED, Task, TaskQuerySet

RECENT = 20
PATH = f"{check_link.__module__}.{check_link.__name__}"


def all_jobs() -> TaskQuerySet:
    """Every job of this demo, newest first; other code's tasks stay private."""
    return Task.objects.filter(path=PATH).order_by("-enqueued_at", "-pk")


def recent() -> list[Task]:
    """The latest jobs, for the home page."""
    return list(all_jobs()[:RECENT])


def get(pk: int) -> Task:
    """One job, or 404."""
    return get_object_or_404(all_jobs(), pk=pk)


def _when(value: datetime | None) -> str | None:
    return None if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def describe(job: Task) -> dict[str, Any]:
    """What the job page shows, as JSON for its live updates."""
    return {
        "id": job.pk,
        "url": job.args[0] if job.args else "",
        "status": job.status,
        "status_label": job.get_status_display(),
        "finished": job.status in FINISHED,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "enqueued_at": _when(job.enqueued_at),
        "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at),
        "worker": job.worker,
        "result": job.result,
        "verdict": verdict(job),
        "summary": summary(job),
        # The error's first line only: tracebacks are for the admin, not for visitors.
        "error": job.error.splitlines()[0] if job.error else "",
    }


def verdict(job: Task) -> str:
    """The API's verdict on the link, in a few words, once there is one."""
    result = job.result if isinstance(job.result, dict) else {}
    if "http_status" not in result:
        return ""
    return f"HTTP {result['http_status']} in {result.get('response_ms', '?')} ms"


def summary(job: Task) -> str:
    """One line on the outcome, for the list: the verdict, or what went wrong last."""
    return verdict(job) or (job.error.splitlines()[0] if job.error else "")
