"""Views that use only Django's Tasks API, as a site written against django.tasks would."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tests.testapp import dtasks


@csrf_exempt
@require_POST
def enqueue_item(request: HttpRequest) -> JsonResponse:
    """Enqueue creating an Item named by the form, and answer with the result's id."""
    result = dtasks.create_item.enqueue(request.POST["name"])
    return JsonResponse({"id": result.id, "status": str(result.status)}, status=202)


@require_GET
def show_result(request: HttpRequest, result_id: str) -> JsonResponse:
    """Answer with a result's status and, once it succeeded, its return value."""
    try:
        result = dtasks.create_item.get_result(result_id)
    except dtasks.TaskResultDoesNotExist:
        return JsonResponse({"error": "no such result"}, status=404)
    value = result.return_value if result.status == dtasks.TaskResultStatus.SUCCESSFUL else None
    return JsonResponse({"status": str(result.status), "value": value, "workers": result.worker_ids})
