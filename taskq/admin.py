"""The Django admin for tasks, pools and schedules: read-only pages and three actions."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from taskq import admin_display as display
from taskq import process, schedule
from taskq.admin_pools import WorkerAdmin
from taskq.changelist import (
    CappedPaginator,
    DistinctValuesFilter,
    ProbingQuerySet,
    TaskChangeList,
    TaskModelAdmin,
    search,
)
from taskq.dashboard_views import dashboard_urls
from taskq.models import FINISHED, Requeued, Status, Task, TaskQuerySet, Worker
from taskq.status import format_duration

RUN_AGAIN_LIMIT = 1000
# The detail page, section by section; every field is read-only.
SUMMARY_FIELDS = (
    "path",
    "status_badge",
    "queue",
    "priority",
    "attempts_of",
    "timeout",
    "pool",
    "stopping",
    "retried_by",
)
CALL_FIELDS = ("args_json", "kwargs_json")
TIME_FIELDS = ("enqueued", "due", "started", "finished", "wait", "run")
OUTCOME_FIELDS = ("result_json", "error_text", "traceback_text")
TECHNICAL_FIELDS = ("worker", "signature", "uid", "lease_expires")


@admin.register(Task)
class TaskAdmin(TaskModelAdmin):
    """Tasks, newest first, with Retry, Cancel and Run again; and the schedules' page."""

    list_display = [
        "id",
        "function",
        "call",
        "status_badge",
        "queue",
        "attempts_of",
        "enqueued_short",
        "wait",
        "run",
        "pool_short",
    ]
    list_filter = ["status", ("queue", DistinctValuesFilter), ("path", DistinctValuesFilter)]
    search_fields = ["id", "path", "error"]
    search_help_text = _(
        "A number finds the task with that id. Words match the function's dotted path, or the "
        "error of a task that has not succeeded."
    )
    date_hierarchy = "enqueued_at"
    ordering = ["-enqueued_at", "-id"]
    # Every other column would sort the whole table; ids follow the enqueue order anyway.
    sortable_by = ["enqueued_short"]
    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["retry", "cancel", "run_again"]
    fieldsets = [
        (None, {"fields": SUMMARY_FIELDS}),
        (_("Call"), {"fields": CALL_FIELDS}),
        (_("Times"), {"fields": TIME_FIELDS, "description": display.TIMES_LEGEND}),
        (_("Outcome"), {"fields": OUTCOME_FIELDS}),
        (_("Attempts"), {"fields": ["timeline"]}),
        (_("Technical details"), {"fields": TECHNICAL_FIELDS, "classes": ["collapse"]}),
    ]
    readonly_fields = (
        SUMMARY_FIELDS + CALL_FIELDS + TIME_FIELDS + OUTCOME_FIELDS + ("timeline",) + TECHNICAL_FIELDS
    )
    times_legend = display.TIMES_LEGEND

    class Media:
        css = {"all": ["taskq/admin.css"]}

    # Querysets --------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        # ModelAdmin.get_queryset, on the queryset class whose date hierarchy probes.
        return ProbingQuerySet(self.model).order_by(*self.get_ordering(request))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Task], search_term: str
    ) -> tuple[QuerySet[Task], bool]:
        return search(queryset, search_term), False

    # Permissions ------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        # A task's page is read-only for everybody; "change" grants the Cancel action.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        if obj is not None and obj.status not in FINISHED:
            return False  # cancel it first; deleting it would hide work still under way
        return super().has_delete_permission(request, obj)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Whether the user may run tasks again (Retry and Run again): taskq.retry_task."""
        return request.user.has_perm(f"{self.opts.app_label}.retry_task")

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions will show (change list or change form) and
        # warns about overrides without the argument; Django 5.2 has no such argument.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location)  # type: ignore[call-arg]
        # It lists every object before deleting; prune() removes old tasks in batches.
        actions.pop("delete_selected", None)
        return actions

    # Columns ----------------------------------------------------------------

    @admin.display(description=_("Status"))
    def status_badge(self, task: Task) -> SafeString:
        return display.status(task, timezone.now())

    @admin.display(description=_("Function"))
    def function(self, task: Task) -> SafeString:
        return display.function_name(task.path)

    @admin.display(description=_("Arguments"))
    def call(self, task: Task) -> SafeString | str:
        # The changelist reads only the start of the arguments (args_head); a page shows them whole.
        return display.args_summary(getattr(task, "args_head", None), getattr(task, "kwargs_head", None))

    @admin.display(description=_("Attempts"))
    def attempts_of(self, task: Task) -> str:
        return f"{task.attempts}/{task.max_attempts}"

    @admin.display(description=_("Enqueued"), ordering="enqueued_at")
    def enqueued_short(self, task: Task) -> SafeString | str:
        return display.when(task.enqueued_at, timezone.now(), short=True)

    @admin.display(description=_("Enqueued"))
    def enqueued(self, task: Task) -> SafeString | str:
        return display.when(task.enqueued_at, timezone.now())

    @admin.display(description=_("Due"))
    def due(self, task: Task) -> SafeString | str:
        return display.when(task.run_after, timezone.now())

    @admin.display(description=_("Started"))
    def started(self, task: Task) -> SafeString | str:
        return display.when(task.started_at, timezone.now())

    @admin.display(description=_("Finished"))
    def finished(self, task: Task) -> SafeString | str:
        return display.when(task.finished_at, timezone.now())

    @admin.display(description=_("Lease expires"))
    def lease_expires(self, task: Task) -> SafeString | str:
        return display.when(task.lease_expires_at, timezone.now())

    @admin.display(description=_("Waited"))
    def wait(self, task: Task) -> str:
        return format_duration(task.wait_time)

    @admin.display(description=_("Ran"))
    def run(self, task: Task) -> str:
        if task.status == Status.RUNNING and task.started_at is not None:
            return gettext("%(duration)s so far") % {
                "duration": format_duration(timezone.now() - task.started_at)
            }
        return format_duration(task.run_time)

    @admin.display(description=_("Pool"))
    def pool_short(self, task: Task) -> SafeString | str:
        return display.pool_short(task.worker)

    @admin.display(description=_("Pool"))
    def pool(self, task: Task) -> SafeString | str:
        live = Worker.objects.filter(name=task.worker).first() if task.worker else None
        return display.pool_long(task.worker, live, timezone.now())

    @admin.display(description=_("Cancel requested"))
    def stopping(self, task: Task) -> str:
        if not task.cancel_requested:
            return self.get_empty_value_display()
        return gettext("Yes: it stops once it checks current_task().cancel_event, or when it finishes.")

    @admin.display(description=_("Args"))
    def args_json(self, task: Task) -> SafeString:
        return display.pre(json.dumps(task.args, indent=2, ensure_ascii=False))

    @admin.display(description=_("Kwargs"))
    def kwargs_json(self, task: Task) -> SafeString:
        return display.pretty_json(task.kwargs)

    @admin.display(description=_("Result"))
    def result_json(self, task: Task) -> SafeString:
        return display.pretty_json(task.result)

    @admin.display(description=_("Last error"))
    def error_text(self, task: Task) -> SafeString | str:
        if not task.error:
            return self.get_empty_value_display()
        if task.status == Status.SUCCEEDED:
            # Left by an earlier attempt; without saying so it reads as this task's failure.
            return format_html(
                '<p class="taskq-earlier">{}</p>{}',
                gettext("An earlier attempt raised this; the last attempt succeeded."),
                display.pre(task.error),
            )
        return display.pre(task.error)

    @admin.display(description=_("Last traceback"))
    def traceback_text(self, task: Task) -> SafeString | str:
        return display.tail(task.traceback) if task.traceback else self.get_empty_value_display()

    @admin.display(description=_("Attempts so far"))
    def timeline(self, task: Task) -> SafeString | str:
        # Every finished attempt, including those before a manual retry, then the one under way.
        return display.timeline(task, timezone.now()) or self.get_empty_value_display()

    # Actions ----------------------------------------------------------------

    @admin.action(description=_("Retry failed or cancelled tasks"), permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        done = self._selection(request, queryset).retry(by=_who(request))
        if done.queued:
            transaction.on_commit(process.notify)
            message = ngettext(
                "Queued %(count)d task again with a fresh attempt budget; its history stays.",
                "Queued %(count)d tasks again with a fresh attempt budget; their history stays.",
                done.queued,
            )
            self.message_user(request, message % {"count": done.queued}, messages.SUCCESS)
        else:
            self.message_user(
                request, gettext("Only failed or cancelled tasks can be retried."), messages.WARNING
            )
        self._report_resigning(request, done)

    @admin.action(description=_("Cancel queued tasks"), permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        done = self._selection(request, queryset).cancel()
        if done.cancelled:
            message = ngettext(
                "Cancelled %(count)d queued task.", "Cancelled %(count)d queued tasks.", done.cancelled
            )
            self.message_user(request, message % {"count": done.cancelled}, messages.SUCCESS)
        if done.stopping:
            message = ngettext(
                "Asked %(count)d running task to stop; it ends cancelled once it checks "
                "current_task().cancel_event, or when it finishes.",
                "Asked %(count)d running tasks to stop; each ends cancelled once it checks "
                "current_task().cancel_event, or when it finishes.",
                done.stopping,
            )
            self.message_user(request, message % {"count": done.stopping})
        if done.already_stopping:
            message = ngettext(
                "%(count)d running task had been asked to stop already.",
                "%(count)d running tasks had been asked to stop already.",
                done.already_stopping,
            )
            self.message_user(request, message % {"count": done.already_stopping})
        if not done.cancelled and not done.stopping and not done.already_stopping:
            self.message_user(
                request, gettext("Only queued or running tasks can be cancelled."), messages.WARNING
            )
        if done.finished:
            message = ngettext(
                "%(count)d task had finished already and was left as it was.",
                "%(count)d tasks had finished already and were left as they were.",
                done.finished,
            )
            self.message_user(request, message % {"count": done.finished})

    @admin.action(description=_("Run again: queue a copy of finished tasks"), permissions=["retry"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        done = self._selection(request, queryset).run_again(by=_who(request), limit=RUN_AGAIN_LIMIT)
        if done.over_limit:
            message = gettext("Run again copies at most %(limit)d tasks at a time; narrow the selection.")
            self.message_user(request, message % {"limit": RUN_AGAIN_LIMIT}, messages.ERROR)
            return
        if not done.queued:
            self.message_user(request, gettext("Only finished tasks can be run again."), messages.WARNING)
            return
        transaction.on_commit(process.notify)
        message = ngettext(
            "Queued %(count)d new task copied from the selection.",
            "Queued %(count)d new tasks copied from the selection.",
            done.queued,
        )
        self.message_user(request, message % {"count": done.queued}, messages.SUCCESS)
        self._report_resigning(request, done)

    def _selection(self, request: HttpRequest, queryset: QuerySet[Task]) -> TaskQuerySet:
        # Django narrows the ticked rows by the list's filters as they match now, so a task
        # ticked under "status: queued" that has started since would drop out of the action.
        # The ticked rows are what the user chose; "select all" is the filter as it is now.
        if request.POST.get("select_across") != "1":
            ticked = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
            queryset = self.get_queryset(request).filter(pk__in=ticked)
        assert isinstance(queryset, TaskQuerySet)  # get_queryset() makes one
        return queryset

    def _report_resigning(self, request: HttpRequest, done: Requeued) -> None:
        if done.resigned:
            message = ngettext(
                "Re-signed %(count)d task with the current SECRET_KEY: its signature matched no key, "
                "as happens when SECRET_KEY changes without the old key in SECRET_KEY_FALLBACKS.",
                "Re-signed %(count)d tasks with the current SECRET_KEY: their signatures matched no "
                "key, as happens when SECRET_KEY changes without the old key in SECRET_KEY_FALLBACKS.",
                done.resigned,
            )
            self.message_user(request, message % {"count": done.resigned}, messages.WARNING)
        for pk, reason in done.not_resigned:
            message = gettext("Task %(id)s was not re-signed: %(reason)s")
            self.message_user(request, message % {"id": pk, "reason": reason}, messages.ERROR)
        for pk in done.key_held:
            message = gettext(
                "Task %(id)s was not queued again: another queued or running task holds its unique key."
            )
            self.message_user(request, message % {"id": pk}, messages.WARNING)

    # Schedules --------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own URLs, whose "<object_id>/" would take "schedules/" for an id.
        name = f"{self.opts.app_label}_{self.opts.model_name}_schedules"
        return [
            *dashboard_urls(self.admin_site),
            path("schedules/", self.admin_site.admin_view(self.schedules_view), name=name),
            *super().get_urls(),
        ]

    def schedules_view(self, request: HttpRequest) -> TemplateResponse:
        """List the periodic tasks with their next and last run and the last outcome, read-only."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = []
        for state in schedule.describe(timezone.now()):
            last_task = None
            if state.last_task_id is not None:
                last_task = reverse(
                    f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
                    args=[state.last_task_id],
                )
            outcome = None
            if state.last_outcome is not None:
                outcome = display.badge(state.last_outcome, Status(state.last_outcome).label)
            rows.append({"state": state, "last_task": last_task, "outcome": outcome})
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Schedules"),
            "opts": self.opts,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/taskq/task/schedules.html", context)


admin.site.register(Worker, WorkerAdmin)


def _who(request: HttpRequest) -> str:
    return str(request.user.get_username())
