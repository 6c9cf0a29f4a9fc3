"""The Workers page: each live pool, what it runs now and what it finished in the last hour.

Two grouped queries serve the whole page, whatever the number of pools on it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, Min
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from taskq import admin_display as display
from taskq.changelist import WorkerModelAdmin
from taskq.conf import settings
from taskq.models import Status, Task, Worker
from taskq.status import format_duration

RECENT = timedelta(hours=1)


@dataclass
class PoolActivity:
    """One pool's running tasks (id, path), and per status its tasks finished since ``since``.

    ``finished`` maps a status to the count and the earliest enqueue time among those tasks.
    """

    since: datetime
    running: list[tuple[int, str]] = field(default_factory=list)
    finished: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)


def activity(names: list[str], now: datetime) -> dict[str, PoolActivity]:
    """Each named pool's activity, read in two queries."""
    since = now - RECENT
    found = {name: PoolActivity(since) for name in names}
    if not names:
        return found
    running = Task.objects.running().filter(worker__in=names).order_by("pk")
    for name, pk, path in running.values_list("worker", "pk", "path"):
        found[name].running.append((pk, path))
    counts: dict[str, dict[str, tuple[int, datetime | None]]] = defaultdict(dict)
    finished = (
        Task.objects.filter(
            status__in=[Status.SUCCEEDED, Status.FAILED], finished_at__gte=since, worker__in=names
        )
        .order_by()
        .values_list("worker", "status")
        .annotate(n=Count("pk"), first=Min("enqueued_at"))
    )
    for name, state, n, first in finished:
        counts[name][state] = (n, first)
    for name, by_status in counts.items():
        found[name].finished = by_status
    return found


class WorkerChangeList(ChangeList):
    """The pools' changelist: each pool on the page carries its PoolActivity as ``activity``."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        pools: list[Any] = list(self.result_list)
        figures = activity([pool.name for pool in pools], timezone.now())
        for pool in pools:
            pool.activity = figures[pool.name]
        self.result_list = pools


def activity_of(pool: Worker) -> PoolActivity:
    """The activity the changelist attached, or an empty one for a pool shown elsewhere."""
    found = getattr(pool, "activity", None)
    return found if isinstance(found, PoolActivity) else PoolActivity(timezone.now() - RECENT)


class WorkerAdmin(WorkerModelAdmin):
    """Pools, as they heartbeat, with what each runs now; pools write these rows, the admin reads them."""

    list_display = [
        "pool",
        "since",
        "heartbeat",
        "busy",
        "running_now",
        "last_hour",
        "serves",
        "alive",
    ]
    list_display_links = ["pool"]
    ordering = ["hostname", "pid"]

    class Media:
        css = {"all": ["taskq/admin.css"]}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WorkerChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Worker | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Worker | None = None) -> bool:
        return False

    @admin.display(description=_("Queues"))
    def serves(self, worker: Worker) -> str:
        return ", ".join(worker.queues) if worker.queues else gettext("all")

    @admin.display(description=_("Pool"), ordering="hostname")
    def pool(self, worker: Worker) -> SafeString:
        return format_html(
            '{} <span class="taskq-ago">pid {}</span><br><span class="taskq-pool">{}</span>',
            worker.hostname,
            worker.pid,
            worker.name,
        )

    @admin.display(description=_("Started"), ordering="started_at")
    def since(self, worker: Worker) -> SafeString | str:
        return display.when(worker.started_at, timezone.now())

    @admin.display(description=_("Last heartbeat"), ordering="last_heartbeat")
    def heartbeat(self, worker: Worker) -> SafeString | str:
        seen = display.ago(worker.last_heartbeat, timezone.now())
        if self._is_alive(worker):
            return seen
        # A pool killed before it could unregister keeps its row until another pool prunes it.
        limit = format_duration(settings.stale_after)
        return format_html(
            '<strong class="taskq-stale">{}</strong> {}',
            gettext("stale: no heartbeat for over %(limit)s") % {"limit": limit},
            seen,
        )

    @admin.display(description=_("Runners busy/free"))
    def busy(self, worker: Worker) -> str:
        running = len(activity_of(worker).running)
        return gettext("%(busy)d busy, %(free)d free") % {
            "busy": running,
            "free": max(worker.threads - running, 0),
        }

    @admin.display(description=_("Running now"))
    def running_now(self, worker: Worker) -> SafeString | str:
        change = f"admin:{Task._meta.app_label}_task_change"
        links = (
            (reverse(change, args=[pk], current_app=self.admin_site.name), path, pk, path.rpartition(".")[2])
            for pk, path in activity_of(worker).running
        )
        return format_html_join(", ", '<a href="{}" title="{}">#{} {}</a>', links) or "-"

    @admin.display(description=_("Last hour"))
    def last_hour(self, worker: Worker) -> SafeString:
        found = activity_of(worker)
        changelist = reverse(
            f"admin:{Task._meta.app_label}_task_changelist", current_app=self.admin_site.name
        )
        parts = []
        for state in (Status.SUCCEEDED, Status.FAILED):
            lookups = {
                "worker": worker.name,
                "status__exact": state,
                "finished_at__gte": found.since.isoformat(),
            }
            count, first = found.finished.get(state, (0, None))
            if first is not None:
                # Every such task was enqueued at or after ``first``: saying so lets the date
                # hierarchy's MIN(enqueued_at) start its index walk there, not at the oldest task.
                lookups["enqueued_at__gte"] = first.isoformat()
            parts.append((f"{changelist}?{urlencode(lookups)}", count, state.label.lower()))
        return format_html_join(" · ", '<a href="{}">{} {}</a>', parts)

    @admin.display(boolean=True, description=_("Alive"))
    def alive(self, worker: Worker) -> bool:
        return self._is_alive(worker)

    def _is_alive(self, worker: Worker) -> bool:
        return worker.last_heartbeat >= timezone.now() - timedelta(seconds=settings.stale_after)
