"""A job is one Task of check_link or recheck_link; this is how the pages find and describe them."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone

from demo_site.linkcheck import display
from demo_site.linkcheck.tasks import check_link, recheck_link, recheck_recent
from taskq import schedule
from taskq.backends import RUN_PATH
from taskq.models import FINISHED, Status, Task, TaskQuerySet

PAGE_SIZE = 20
PATH = f"{check_link.__module__}.{check_link.__name__}"
# A Django @task's row stores taskq's runner as its path and the @task's own path first in its args.
RECHECK_PATH = recheck_link.module_path
SCHEDULED_PATH = f"{recheck_recent.__module__}.{recheck_recent.__name__}"

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
    return Task.objects.filter(Q(path=PATH) | Q(path=RUN_PATH, args__0=RECHECK_PATH)).order_by(
        "-enqueued_at", "-pk"
    )


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


def is_recheck(job: Task) -> bool:
    """Whether the schedule queued this job through Django's Tasks API, rather than a visitor's form."""
    return job.path == RUN_PATH


def url_of(job: Task) -> str:
    """The link a job checks, wherever its kind of row keeps it."""
    args = job.args if isinstance(job.args, list) else []
    if is_recheck(job):
        # TaskqBackend stores [task path, backend alias, takes_context, args, kwargs].
        args = args[3] if len(args) > 3 and isinstance(args[3], list) else []
    return str(args[0]) if args else ""


def state(job: Task) -> str:
    """The job's status, except that a queued job with attempts behind it is retrying, not new."""
    if job.status == Status.QUEUED and job.attempts > 0:
        return "retrying"
    return str(job.status)


def describe(job: Task, detail: bool = False) -> dict[str, Any]:
    """What the pages show, as JSON for their live updates; ``detail`` adds the job page's parts."""
    current = state(job)
    described = {
        "id": job.pk,
        "url": url_of(job),
        "recheck": is_recheck(job),
        "status": job.status,
        "state": current,
        "status_label": "Retrying" if current == "retrying" else job.get_status_display(),
        "finished": job.status in FINISHED,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "enqueued_at": display.when(job.enqueued_at),
        "started_at": display.when(job.started_at),
        "finished_at": display.when(job.finished_at),
        "next_attempt_at": display.when(job.run_after) if current == "retrying" else "",
        "worker": job.worker,
        "pool": display.pool(job.worker),
        "result": job.result,
        "verdict": verdict(job),
        "link": link_status(job),
        "link_label": LINK_LABELS[link_status(job)],
        "summary": summary(job),
        # The error's first line only: tracebacks are for the admin, not for visitors.
        "error": job.error.splitlines()[0] if job.error else "",
    }
    if detail:
        described["attempts_html"] = render_to_string("linkcheck/_attempts.html", _attempts(job, described))
        # What the running attempt reported through current_task().progress().
        progress = job.progress_for_display() if job.status == Status.RUNNING else None
        described["progress_html"] = render_to_string("linkcheck/_progress.html", {"progress": progress})
    return described


def _attempts(job: Task, described: dict[str, Any]) -> dict[str, Any]:
    # The timeline: each finished attempt from the history, then the one running or to come.
    upcoming = None
    if described["state"] in ("retrying", "queued"):
        upcoming = {"number": job.attempts + 1, "clock": display.clock(job.run_after)}
        upcoming["iso"] = display.iso(job.run_after)
        # A job queued for the first time waits only for a free runner, unless deferred.
        upcoming["deferred"] = job.run_after > timezone.now()
    running = None
    if job.status == Status.RUNNING:
        running = {
            "number": job.attempts,
            "clock": display.clock(job.started_at),
            "iso": display.iso(job.started_at),
            "pool": described["pool"],
        }
    return {
        "job": described,
        "timeline": display.attempts(job.history),
        "upcoming": upcoming,
        "running": running,
        "enqueued_iso": display.iso(job.enqueued_at),
        "started_iso": display.iso(job.started_at),
        "finished_iso": display.iso(job.finished_at),
    }


def next_attempt(job: Task) -> str:
    """``attempt 2 of 3 at 03:18:12 UTC``: when a retrying job runs again."""
    return f"attempt {job.attempts + 1} of {job.max_attempts} at {display.clock(job.run_after)}"


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
    error = job.error.splitlines()[0] if job.error else ""
    if state(job) == "retrying":
        return f"Retrying: {next_attempt(job)}" + (f" after {error}" if error else "")
    return verdict(job) or error


def recheck_schedule() -> schedule.ScheduleState | None:
    """The state of the schedule entry that re-checks recent links; None when it is switched off."""
    return next((entry for entry in schedule.describe() if entry.task == SCHEDULED_PATH), None)
