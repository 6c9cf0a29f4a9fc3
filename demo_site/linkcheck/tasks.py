"""The demo's tasks: check one link through the third-party API, two ways, and re-check on a schedule.

``check_link`` is a taskq task, enqueued with ``taskq.enqueue`` when a visitor submits the form.
``recheck_link`` does the same check written against Django's Tasks API (``@task`` from
``django.tasks``, or the ``django_tasks`` backport on Django 5.2) and is enqueued with its
``.enqueue()`` through ``taskq.backends.TaskqBackend`` (the ``TASKS`` setting). ``recheck_recent``
is the periodic task (``TASKQ_SCHEDULE``) that re-checks the links checked most recently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from demo_site.linkcheck import api
from taskq import GiveUp, current_task, task
from taskq.models import Task

if TYPE_CHECKING:
    # Typed against the backport, whose API matches django.tasks name for name.
    from django_tasks import task as django_task
else:
    try:
        from django.tasks import task as django_task
    except ImportError:
        from django_tasks import task as django_task

# How many of the most recently checked links each run of the schedule checks again.
RECHECK_LINKS = 3


# Three attempts ride out a short outage (taskq waits longer before each retry); the
# task timeout is a backstop well above the HTTP timeout, which should fire first.
@task(max_attempts=3, timeout=60)
def check_link(url: str, latency: float | None = None, failure_rate: float | None = None) -> dict[str, Any]:
    """Check ``url`` through the API; transient errors are retried, refusals are final."""
    context = current_task()
    if context is not None:  # None when a test calls the function directly
        context.progress(1, 2, "asking the link-checking API")
    try:
        answer = api.check(url, latency=latency, failure_rate=failure_rate)
    except api.ApiRejected as exc:
        raise GiveUp(str(exc)) from exc
    if context is not None:
        context.progress(2, 2, "the API answered")
    return answer


# Django's API has no word for attempts or a timeout: the backend's OPTIONS in TASKS set them.
@django_task()
def recheck_link(url: str) -> dict[str, Any]:
    """Check ``url`` again with the site's own API settings, as a Django ``@task``."""
    try:
        return api.check(url)
    except api.ApiRejected as exc:
        # taskq's GiveUp works in a Django task too: the backend runs it in a taskq runner.
        raise GiveUp(str(exc)) from exc


def recheck_recent() -> list[str]:
    """Enqueue a ``recheck_link`` for each of the links checked most recently; return them."""
    links = recent_links(RECHECK_LINKS)
    for url in links:
        recheck_link.enqueue(url)
    return links


def recent_links(count: int) -> list[str]:
    """The ``count`` distinct links that visitors submitted most recently, newest first."""
    path = f"{check_link.__module__}.{check_link.__name__}"
    # A bounded read: the newest submissions are enough to find a few distinct links.
    newest = Task.objects.filter(path=path).order_by("-enqueued_at", "-pk").values_list("args", flat=True)
    links: list[str] = []
    for args in newest[: count * 10]:
        url = args[0] if isinstance(args, list) and args else None
        if isinstance(url, str) and url not in links:
            links.append(url)
            if len(links) == count:
                break
    return links
