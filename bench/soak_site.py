"""The soak's site: a view that enqueues a batch of tasks, and the task, which counts its own calls."""

from __future__ import annotations

import os

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponseBadRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import taskq
from taskq import task

# The task's own record of every call, kept apart from taskq's rows so a task run twice shows
# up however taskq bookkeeps it. bench/soak.py creates it before the server starts.
CALLS_TABLE = "soak_call"
MAX_BATCH = 1000


class PlannedFailure(RuntimeError):
    """The failure a soak task was told to raise on this call."""


def plan(n: int) -> int:
    """How many calls of task ``n`` fail: 10 % fail every attempt, 10 % once, the rest none."""
    return {0: 99, 1: 1}.get(n % 10, 0)


@task(max_attempts=3)
def soak_call(n: int, fail_times: int) -> int:
    """Record this call, then fail if the plan says this call should; return the call's number."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {CALLS_TABLE} (n, pid) VALUES (%s, %s)", [n, os.getpid()])
        cursor.execute(f"SELECT count(*) FROM {CALLS_TABLE} WHERE n = %s", [n])
        (calls,) = cursor.fetchone()
    if calls <= fail_times:
        raise PlannedFailure(f"task {n}: planned failure on call {calls}")
    return int(calls)


@csrf_exempt
@require_POST
def enqueue(request: HttpRequest) -> JsonResponse | HttpResponseBadRequest:
    """Enqueue tasks ``start`` to ``start + count - 1`` in one transaction, as a form post would."""
    try:
        start, count = int(request.GET["start"]), int(request.GET["count"])
    except (KeyError, ValueError):
        return HttpResponseBadRequest("start and count must be integers")
    if not 0 < count <= MAX_BATCH:
        return HttpResponseBadRequest(f"count must be between 1 and {MAX_BATCH}")
    with transaction.atomic():
        for n in range(start, start + count):
            taskq.enqueue(soak_call, n, plan(n))
    return JsonResponse({"enqueued": count})


urlpatterns = [path("soak/enqueue", enqueue)]
