"""A view that enqueues, as a user's view would, for the immediate-mode tests."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from taskq import enqueue
from tests.testapp import tasks


@require_POST
def create_item_later(request: HttpRequest) -> JsonResponse:
    """Enqueue creating an Item named by the form, and answer with the task's id."""
    task = enqueue(tasks.create_item, request.POST["name"])
    return JsonResponse({"task": task.pk}, status=202)
