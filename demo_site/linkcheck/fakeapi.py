"""A stand-in for a slow, flaky third-party API, served by the demo site itself over HTTP.

GET /fake-api/check?url=... waits FAKE_API_LATENCY seconds (half to one and a half
times that), fails with 503 at FAKE_API_FAILURE_RATE, refuses hosts under .invalid with
422, and otherwise answers with a made-up report on the link. ``latency`` and
``failure_rate`` in the query override the settings for one call.

The fake API is public and sleeps on the site's own request threads, so it is bounded
twice: a visitor may ask for at most MAX_LATENCY seconds, and at most MAX_CALLS calls
wait at once in each process; any more get 503 at once, which the tasks retry.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import Http404, HttpRequest, JsonResponse, QueryDict
from django.utils import timezone
from django.views.decorators.http import require_GET

from demo_site.linkcheck.conf import settings

# The delay varies from half to one and a half times the latency asked for.
JITTER_LOW, JITTER_HIGH = 0.5, 1.5
# With the jitter, 6 s answers within 9 s: under the client's default 10 s timeout, so
# every latency a visitor may ask for can still succeed.
MAX_LATENCY = 6.0
# Fewer than a gunicorn process's request threads (4 in deploy/gunicorn.conf.py), so the
# pages always keep a thread however many slow calls visitors start.
MAX_CALLS = 3

slots = threading.BoundedSemaphore(MAX_CALLS)


class BadQuery(ValueError):
    """A query parameter is missing or out of range."""


def _number(query: QueryDict, name: str, default: float, low: float, high: float) -> float:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadQuery(f"{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise BadQuery(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value


def report(url: str) -> dict[str, object]:
    """Make up a plausible, repeatable report on ``url`` (the fake API fetches nothing)."""
    digest = hashlib.sha256(url.encode()).digest()
    return {
        "url": url,
        "http_status": 404 if "missing" in url.lower() else 200,
        "response_ms": 40 + int.from_bytes(digest[:2], "big") % 900,
        "content_type": "text/html; charset=utf-8",
        "checked_at": timezone.now().isoformat(),
    }


@require_GET
def check(request: HttpRequest) -> JsonResponse:
    """Answer like a slow third-party API would, with the configured latency and failures."""
    if not settings.fake_api:
        raise Http404("The fake API is switched off (FAKE_API=false).")
    try:
        latency = _number(request.GET, "latency", settings.fake_latency, 0.0, MAX_LATENCY)
        failure_rate = _number(request.GET, "failure_rate", settings.fake_failure_rate, 0.0, 1.0)
    except BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    url = request.GET.get("url", "")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return JsonResponse({"error": f"not an http(s) URL: {url!r}"}, status=400)

    if not slots.acquire(blocking=False):
        return JsonResponse(
            {"error": f"busy: at most {MAX_CALLS} calls at a time, try again later"},
            status=503,
        )
    try:
        time.sleep(latency * random.uniform(JITTER_LOW, JITTER_HIGH))  # noqa: S311 - jitter, not security
    finally:
        slots.release()
    if random.random() < failure_rate:  # noqa: S311 - as above
        return JsonResponse(
            {"error": f"simulated outage (failure rate {failure_rate:.0%})"},
            status=503,
        )
    host = urlsplit(url).hostname or ""
    if host.endswith(".invalid"):
        return JsonResponse({"error": f"cannot resolve host {host}"}, status=422)
    return JsonResponse(report(url))
