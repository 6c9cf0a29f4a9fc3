"""The demo's task: check one link through the third-party API."""

from __future__ import annotations

from typing import Any

from demo_site.linkcheck import api
from taskq import GiveUp, task


# Three attempts ride out a short outage (taskq waits longer before each retry); the
# task timeout is a backstop well above the HTTP timeout, which should fire first.
@task(max_attempts=3, timeout=60)
def check_link(url: str, latency: float | None = None, failure_rate: float | None = None) -> dict[str, Any]:
    """Check ``url`` through the API; transient errors are retried, refusals are final."""
    try:
        return api.check(url, latency=latency, failure_rate=failure_rate)
    except api.ApiRejected as exc:
        raise GiveUp(str(exc)) from exc
