"""The demo's pages: the form, a job's live page, and the JSON they poll."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from demo_site.linkcheck import display, jobs
from demo_site.linkcheck.conf import settings
from demo_site.linkcheck.forms import CheckForm
from demo_site.linkcheck.tasks import RECHECK_LINKS, check_link
from taskq import enqueue


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Show the form and a page of jobs; on a valid POST, enqueue one job per link."""
    form = CheckForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        # One transaction: either every job is stored or none is, and the pool is
        # woken only once they are committed.
        with transaction.atomic():
            created = [enqueue(check_link, url, **form.simulation()) for url in form.cleaned_data["urls"]]
        if len(created) == 1:
            return redirect("linkcheck:job", pk=created[0].pk)
        messages.success(request, f"Checking {len(created)} links.")
        # The list shows these first, so a visitor finds them among everyone else's.
        return redirect(reverse("linkcheck:home") + "?new=" + ",".join(str(job.pk) for job in created))
    page, rows = jobs.listing(request.GET.get("page"), request.GET.get("new"))
    fresh = jobs.new_ids(request.GET.get("new"))
    return render(
        request,
        "linkcheck/home.html",
        {
            "form": form,
            "jobs": [jobs.describe(job) | {"new": job.pk in fresh} for job in rows],
            "page": page,
            "fake_api": settings.fake_api,
            "recheck": _recheck_panel(),
        },
    )


def _recheck_panel() -> dict[str, Any] | None:
    # What the home page says about the periodic re-check: how often, and its last and next runs.
    state = jobs.recheck_schedule()
    if state is None:
        return None
    return {
        "name": state.name,
        "spec": state.spec,
        "links": RECHECK_LINKS,
        "last_clock": display.clock(state.last_run),
        "last_iso": display.iso(state.last_run),
        "last_outcome": state.last_outcome or "",
        "next_clock": display.clock(state.next_run),
        "next_iso": display.iso(state.next_run),
    }


@require_GET
def job(request: HttpRequest, pk: int) -> HttpResponse:
    """One job's page; its script keeps it up to date until the job finishes."""
    task = jobs.get(pk)
    described = jobs.describe(task, detail=True)
    result = described["result"]
    result_json = "" if result is None else json.dumps(result, indent=2)
    context = {
        "job": described,
        "result_json": result_json,
        "enqueued_clock": display.clock(task.enqueued_at),
        "enqueued_iso": display.iso(task.enqueued_at),
    }
    return render(request, "linkcheck/job.html", context)


@require_GET
def job_status(request: HttpRequest, pk: int) -> JsonResponse:
    """One job as JSON, polled by the job page."""
    return JsonResponse(jobs.describe(jobs.get(pk), detail=True))


@require_GET
def recent_status(request: HttpRequest) -> JsonResponse:
    """The home page's jobs as JSON (same ``page`` and ``new``), polled while any is unfinished."""
    _, rows = jobs.listing(request.GET.get("page"), request.GET.get("new"))
    return JsonResponse({"jobs": [jobs.describe(job) for job in rows]})
