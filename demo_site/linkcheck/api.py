"""Client of the third-party link-checking API: one HTTP call, always with a timeout."""

from __future__ import annotations

import json
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urljoin
from urllib.request import Request, urlopen

from demo_site.linkcheck.conf import settings

# Statuses that say "not now" rather than "never": worth another attempt later.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ApiError(Exception):
    """The API gave no usable answer."""


class ApiUnavailable(ApiError):
    """The API is down, slow or overloaded: the same request may work later."""


class ApiRejected(ApiError):
    """The API refused this request: sending it again will not help."""


def check(url: str, latency: float | None = None, failure_rate: float | None = None) -> dict[str, Any]:
    """Ask the API about ``url`` and return its JSON answer.

    ``latency`` and ``failure_rate`` are knobs of the demo's fake API; a real one ignores them.
    """
    query: dict[str, str | float] = {"url": url}
    if latency is not None:
        query["latency"] = latency
    if failure_rate is not None:
        query["failure_rate"] = failure_rate
    endpoint = urljoin(settings.api_url, "check") + "?" + urlencode(query)
    request = Request(endpoint, headers={"Accept": "application/json", "User-Agent": "taskq-demo"})  # noqa: S310 - the URL comes from settings, not from visitors
    try:
        # Without a timeout a hung API would hold one of the pool's threads until the
        # task's own timeout abandons it; with one, the attempt fails and is retried.
        with urlopen(request, timeout=settings.api_timeout) as response:  # noqa: S310 - as above
            answer: dict[str, Any] = json.load(response)
            return answer
    except HTTPError as exc:
        message = f"the API answered HTTP {exc.code}: {_reason(exc)}"
        if exc.code in TRANSIENT_STATUSES:
            raise ApiUnavailable(message) from exc
        raise ApiRejected(message) from exc
    except URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _timed_out() from exc
        raise ApiUnavailable(f"cannot reach the API: {exc.reason}") from exc
    except TimeoutError as exc:
        raise _timed_out() from exc
    except ValueError as exc:
        raise ApiUnavailable(f"the API's answer is not JSON: {exc}") from exc


def _timed_out() -> ApiUnavailable:
    return ApiUnavailable(f"no answer within {settings.api_timeout:g}s")


def _reason(exc: HTTPError) -> str:
    # Prefer the API's own explanation ({"error": ...}) over the bare status phrase.
    try:
        body = json.loads(exc.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    return str(exc.reason)
