"""A job is one Task of check_link; this is how the pages find and describe them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.shortcuts import get_object_or_404
from django.utils import timezone

from demo_site.linkcheck.tasks import check_link
from taskq.models import FINISHED, Task, TaskQuerySet

PAGE_SIZE = 20
PATH = f"{check_link.__module__}.{check_link.__name__}"

# What the API found out about the link, which is not the task's status: a task that
# succeeded may have found the link broken, and one that failed may not have found out.
LINK_LABELS = {
    "": "Not yet checked",
    "ok": "OK",
    "broken": "Broken",
    "unreachable": "Unreachable",
    "unknown": "Unknown",
}


def all_jobs() -> TaskQuerySet:
    """Every job of this demo, newest first; other code's tasks stay private."""
    return Task.objects.filter(path=PATH).order_by("-enqueued_at", "-pk")


def listing(page: str | None, new: str | None) -> tuple[Page[Task], list[Task]]:
    """One page of jobs, newest first; on the first, the jobs just submitted lead in their order."""
    current = Paginator(all_jobs(), PAGE_SIZE).get_page(page)
    rows = list(current.object_list)
    fresh = new_ids(new)
    if current.number == 1 and fresh:
        leading = list(all_jobs().filter(pk__in=fresh).order_by("pk"))
        rows = leading + [job for job in rows if job.pk not in fresh][: PAGE_SIZE - len(leading)]
    return current, rows


def new_ids(raw: str | None) -> set[int]:
    """The ids in ``?new=1,2,3``, ignoring anything that is not one (it comes from the address bar)."""
    return {int(part) for part in (raw or "").split(",")[:PAGE_SIZE] if part.isdigit()}


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
        "link": link_status(job),
        "link_label": LINK_LABELS[link_status(job)],
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


def link_status(job: Task) -> str:
    """The link's verdict, one of LINK_LABELS: broken means the page answered with an error status."""
    result = job.result if isinstance(job.result, dict) else {}
    status = result.get("http_status")
    if isinstance(status, int):
        return "ok" if status < 400 else "broken"
    if job.status not in FINISHED:
        return ""
    # check_link gives up at once only when the API refused the link itself (GiveUp);
    # any other failure means the API never gave an answer about it.
    if job.error.startswith("GiveUp:"):
        return "unreachable"
    return "unknown"


def summary(job: Task) -> str:
    """One line on the outcome, for the list: the verdict, or what went wrong last."""
    return verdict(job) or (job.error.splitlines()[0] if job.error else "")
