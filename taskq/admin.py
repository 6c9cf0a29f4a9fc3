"""The Django admin for tasks and workers: read-only pages, three actions, fast at a million rows."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import tzinfo as tzinfo_type
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings as django_settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, models, router, transaction
from django.db.models import F, Max, Min, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal

from taskq import process, signing
from taskq.conf import settings
from taskq.exceptions import InvalidTask
from taskq.models import FINISHED, Status, Task, TaskQuerySet, Worker
from taskq.signals import task_enqueued
from taskq.status import format_duration
from taskq.validation import clean_arguments, runnable

# Columns the changelist never shows; a page of tracebacks is slow to fetch and render.
HEAVY_FIELDS = ("args", "kwargs", "result", "error", "traceback", "signature")
RUN_AGAIN_LIMIT = 1000
# Retry and Run again re-sign a task that the worker refused with this error, and only such
# a task: an admin who acts on it vouches for a row whose key was rotated away.
REFUSED_PREFIX = "BadTaskSignature"
SIGNED_FIELDS = ("path", "args", "kwargs", "uid", "signature")
MAX_ID = 2**63 - 1
# The detail page, section by section; every field is read-only.
SUMMARY_FIELDS = (
    "path",
    "status_badge",
    "queue",
    "priority",
    "attempts_of",
    "timeout",
    "worker",
    "cancel_requested",
    "retried_by",
)
CALL_FIELDS = ("args_json", "kwargs_json", "signature")
TIME_FIELDS = ("enqueued_at", "run_after", "started_at", "finished_at", "lease_expires_at", "wait", "run")
OUTCOME_FIELDS = ("result_json", "error_text", "traceback_text")
SEARCH_PATHS_LIMIT = 1000  # with more distinct paths, a search reads every row's path
UNSUCCESSFUL = [s for s in Status if s != Status.SUCCEEDED]
MAX_PROBES = 400  # periods the date hierarchy probes in one query; more falls back to DISTINCT


if TYPE_CHECKING:
    TaskModelAdmin = admin.ModelAdmin[Task]
    WorkerModelAdmin = admin.ModelAdmin[Worker]
    PaginatorBase = Paginator[Any]
else:
    # These classes are generic only in django-stubs.
    TaskModelAdmin = WorkerModelAdmin = admin.ModelAdmin
    PaginatorBase = Paginator

# Scale: nothing on the changelist reads more rows than a page, a count cap or an index probe.


class CappedPaginator(PaginatorBase):
    """Counts at most ``limit`` rows, so a page of a million-row table costs no full COUNT(*)."""

    limit = 10_000

    @cached_property
    def count(self) -> int:
        """The number of objects, or ``limit + 1`` when there are more (then ``capped`` is True)."""
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list)
        return int(self.object_list.order_by()[: self.limit + 1].count())

    @property
    def capped(self) -> bool:
        """True when there are more objects than were counted."""
        return self.count > self.limit


class DistinctValuesFilter(admin.AllValuesFieldListFilter):
    """Lists a column's values by stepping through its index, not by DISTINCT over every row."""

    limit = 100

    def __init__(
        self,
        field: Any,
        request: HttpRequest,
        params: Any,
        model: type[models.Model],
        model_admin: Any,
        field_path: str,
    ) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = distinct_values(model, field.column, self.limit)  # type: ignore[assignment]


def distinct_values(model: type[models.Model], column: str, limit: int) -> list[str]:
    """Up to ``limit`` distinct values of an indexed column, in order, in one query."""
    connection = connections[router.db_for_read(model)]
    table, col = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(column)
    if connection.vendor == "mysql":
        # MariaDB's own loose index scan ("Using index for group-by") serves a DISTINCT on an
        # index prefix. The walk below would read the whole index at every step there (0.4 s
        # at 1M rows), because MariaDB plans no range on walk.v inside the dependent subquery.
        sql = f"SELECT DISTINCT {col} FROM {table} ORDER BY {col} LIMIT %s"  # noqa: S608
    else:
        # A loose index scan by hand: each step asks the index for the next larger value, so
        # the cost follows the number of distinct values rather than the number of rows.
        sql = (
            f"WITH RECURSIVE walk (v, n) AS ("  # noqa: S608 - the model's own names, quoted
            f" SELECT MIN({col}), 1 FROM {table}"
            f" UNION ALL"
            f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > walk.v), n + 1"
            f" FROM walk WHERE walk.v IS NOT NULL AND n < %s"
            f") SELECT v FROM walk WHERE v IS NOT NULL"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class ProbingQuerySet(TaskQuerySet):
    """The admin's task queryset: finds the date hierarchy's non-empty periods by index probes.

    Django's date hierarchy runs SELECT DISTINCT over the truncated date of every matching
    row; this asks, per candidate year, month or day, whether any row falls in it.
    """

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # SQLite reads MIN(x) or MAX(x) from one end of an index only when it is the query's
        # sole aggregate; the date hierarchy's MIN and MAX together scan the whole index
        # (0.15 s at 1M rows). Each bound as a subquery, first row in index order, is a probe.
        bounds = [
            (name, a.get_source_expressions()[0].name, type(a) is Min)
            for name, a in kwargs.items()
            if type(a) in (Min, Max) and a.filter is None and isinstance(a.get_source_expressions()[0], F)
        ]
        if args or len(bounds) < 2 or len(bounds) != len(kwargs) or connections[self.db].vendor != "sqlite":
            return super().aggregate(*args, **kwargs)
        probes = {}
        for name, field, lowest in bounds:
            first = self.filter(**{f"{field}__isnull": False}).order_by(field if lowest else f"-{field}")
            probes[name] = Subquery(first.values(field)[:1])
        row = self.model._base_manager.using(self.db).order_by().annotate(**probes).values(*probes)[:1]
        return next(iter(row), dict.fromkeys(probes))

    def datetimes(  # type: ignore[override]
        self,
        field_name: str,
        kind: Literal["year", "month", "week", "day", "hour", "minute", "second"],
        order: Literal["ASC", "DESC"] = "ASC",
        tzinfo: tzinfo_type | None = None,
    ) -> list[datetime] | QuerySet[Task, datetime]:
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        periods = list(_periods(bounds["first"], bounds["last"], kind, tzinfo))
        if len(periods) > MAX_PROBES:
            return super().datetimes(field_name, kind, order, tzinfo)
        found = [
            start for (start, _), hit in zip(periods, self._any_in(field_name, periods), strict=True) if hit
        ]
        return found if order == "ASC" else found[::-1]

    def _any_in(self, field_name: str, periods: list[tuple[datetime, datetime]]) -> list[bool]:
        parts, params = [], []
        for start, end in periods:
            # The first value in the period, not EXISTS: PostgreSQL drops the ORDER BY from
            # an EXISTS and may then scan the table from the wrong end; ORDER BY ... LIMIT 1
            # is a walk along the index from the period's start.
            first = (
                self.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end})
                .order_by(field_name)
                .values_list(field_name)[:1]
            )
            sql, first_params = first.query.get_compiler(self.db).as_sql()
            parts.append(f"({sql})")
            params.extend(first_params)
        with connections[self.db].cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(parts), params)
            row = cursor.fetchone()
        return [value is not None for value in row]


def _periods(
    first: datetime, last: datetime, kind: str, tzinfo: tzinfo_type | None
) -> Iterator[tuple[datetime, datetime]]:
    # Periods start at local midnight, as the date hierarchy's own lookups do.
    tz = tzinfo or timezone.get_current_timezone()
    if django_settings.USE_TZ:
        first, last = timezone.localtime(first, tz), timezone.localtime(last, tz)

    def at(year: int, month: int = 1, day: int = 1) -> datetime:
        moment = datetime(year, month, day)
        return timezone.make_aware(moment, tz) if django_settings.USE_TZ else moment

    if kind == "year":
        for year in range(first.year, last.year + 1):
            yield at(year), at(year + 1)
    elif kind == "month":
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            following = (year + month // 12, month % 12 + 1)
            yield at(year, month), at(*following)
            year, month = following
    else:
        day = first.date()
        while day <= last.date():
            after = day + timedelta(days=1)
            yield at(day.year, day.month, day.day), at(after.year, after.month, after.day)
            day = after


class TaskChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Task]:
        return super().get_queryset(request, exclude_parameters).defer(*HEAVY_FIELDS)

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.paginator.capped:
            # The search form shows "N results" when N differs from the full count;
            # a capped N would be wrong, so it shows nothing instead.
            self.full_result_count = self.result_count


@admin.register(Task)
class TaskAdmin(TaskModelAdmin):
    list_display = [
        "id",
        "path",
        "status_badge",
        "queue",
        "priority",
        "attempts_of",
        "enqueued_at",
        "wait",
        "run",
        "worker",
    ]
    list_filter = ["status", ("queue", DistinctValuesFilter), ("path", DistinctValuesFilter)]
    search_fields = ["id", "path", "error"]
    search_help_text = (
        "A number finds the task with that id. Words match the function's dotted path, or the "
        "error of a task that has not succeeded."
    )
    date_hierarchy = "enqueued_at"
    ordering = ["-enqueued_at", "-id"]
    # Every other column would sort the whole table.
    sortable_by = ["id", "enqueued_at"]
    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["retry", "cancel", "run_again"]
    fieldsets = [
        (None, {"fields": SUMMARY_FIELDS}),
        ("Call", {"fields": CALL_FIELDS}),
        ("Times", {"fields": TIME_FIELDS}),
        ("Outcome", {"fields": OUTCOME_FIELDS}),
    ]
    readonly_fields = SUMMARY_FIELDS + CALL_FIELDS + TIME_FIELDS + OUTCOME_FIELDS

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
        paths: list[str] | None = None
        for word in smart_split(search_term):
            if word[0] in "\"'" and word[0] == word[-1] and len(word) > 1:
                word = unescape_string_literal(word)
            number = word.removeprefix("#")
            if number.isdigit():
                # A number is an id and nothing else: one probe of the primary key.
                queryset = queryset.filter(pk=int(number)) if int(number) <= MAX_ID else queryset.none()
                continue
            if paths is None:
                paths = distinct_values(Task, "path", SEARCH_PATHS_LIMIT)
            # Matching the word against the distinct paths first turns a scan of every row's
            # path into index lookups; errors are searched only where a task did not succeed,
            # which the status indexes narrow down to a small share of the table.
            by_path = (
                Q(path__in=[p for p in paths if word.casefold() in p.casefold()])
                if len(paths) < SEARCH_PATHS_LIMIT
                else Q(path__icontains=word)
            )
            queryset = queryset.filter(by_path | Q(status__in=UNSUCCESSFUL, error__icontains=word))
        return queryset, False

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

    @admin.display(description="Status")
    def status_badge(self, task: Task) -> SafeString:
        label = task.get_status_display()
        if task.status == Status.RUNNING and task.cancel_requested:
            label += " (stopping)"
        return format_html('<span class="taskq-status taskq-status-{}">{}</span>', task.status, label)

    @admin.display(description="Attempts")
    def attempts_of(self, task: Task) -> str:
        return f"{task.attempts}/{task.max_attempts}"

    @admin.display(description="Waited")
    def wait(self, task: Task) -> str:
        return format_duration(task.wait_time)

    @admin.display(description="Ran")
    def run(self, task: Task) -> str:
        if task.status == Status.RUNNING and task.started_at is not None:
            return f"{format_duration(timezone.now() - task.started_at)} so far"
        return format_duration(task.run_time)

    @admin.display(description="Args")
    def args_json(self, task: Task) -> SafeString:
        return _pre(json.dumps(task.args, indent=2, ensure_ascii=False))

    @admin.display(description="Kwargs")
    def kwargs_json(self, task: Task) -> SafeString:
        return _pre(json.dumps(task.kwargs, indent=2, sort_keys=True, ensure_ascii=False))

    @admin.display(description="Result")
    def result_json(self, task: Task) -> SafeString:
        return _pre(json.dumps(task.result, indent=2, sort_keys=True, ensure_ascii=False))

    @admin.display(description="Error")
    def error_text(self, task: Task) -> SafeString | str:
        return _pre(task.error) if task.error else self.get_empty_value_display()

    @admin.display(description="Traceback")
    def traceback_text(self, task: Task) -> SafeString | str:
        return _pre(task.traceback) if task.traceback else self.get_empty_value_display()

    # Actions ----------------------------------------------------------------

    @admin.action(description="Retry failed or cancelled tasks", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        now = timezone.now()
        retryable = queryset.filter(status__in=[Status.FAILED, Status.CANCELLED])
        resigned, refused = 0, []
        for task in retryable.filter(error__startswith=REFUSED_PREFIX).only(*SIGNED_FIELDS):
            if _verifies(task):
                continue
            try:
                _resign(task, task.uid or secrets.token_hex(16))
            except InvalidTask as exc:
                refused.append(f"Task {task.pk} was not re-signed: {exc}")
                continue
            Task.objects.filter(pk=task.pk).update(uid=task.uid, signature=task.signature)
            resigned += 1
        count = retryable.update(
            status=Status.QUEUED,
            attempts=0,
            enqueued_at=now,
            run_after=now,
            started_at=None,
            finished_at=None,
            lease_expires_at=None,
            worker="",
            cancel_requested=False,
            result=None,
            error="",
            traceback="",
            retried_by=_who(request),
        )
        if count:
            transaction.on_commit(process.notify)
            self.message_user(
                request, f"Queued {count} task(s) again with a fresh attempt budget.", messages.SUCCESS
            )
        else:
            self.message_user(request, "Only failed or cancelled tasks can be retried.", messages.WARNING)
        self._report_resigning(request, resigned, refused)

    def _report_resigning(self, request: HttpRequest, resigned: int, refused: list[str]) -> None:
        if resigned:
            self.message_user(
                request,
                f"Re-signed {resigned} task(s) with the current SECRET_KEY: their signatures matched no "
                "key, as happens when SECRET_KEY changes without the old key in SECRET_KEY_FALLBACKS.",
                messages.WARNING,
            )
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Cancel queued tasks", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        # The same conditional UPDATEs as Task.cancel(), over the whole selection at once.
        cancelled = queryset.filter(status=Status.QUEUED).update(
            status=Status.CANCELLED, finished_at=timezone.now()
        )
        stopping = queryset.filter(status=Status.RUNNING, cancel_requested=False).update(
            cancel_requested=True
        )
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} queued task(s).", messages.SUCCESS)
        if stopping:
            self.message_user(
                request,
                f"Asked {stopping} running task(s) to stop; each ends cancelled once it "
                "checks current_task().cancel_event, or when it finishes.",
            )
        if not cancelled and not stopping:
            self.message_user(request, "Only queued or running tasks can be cancelled.", messages.WARNING)

    @admin.action(description="Run again: queue a copy of finished tasks", permissions=["retry"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        originals = list(
            queryset.filter(status__in=FINISHED)
            .order_by("pk")
            .only(*SIGNED_FIELDS, "error", "queue", "priority", "max_attempts", "timeout")[
                : RUN_AGAIN_LIMIT + 1
            ]
        )
        if len(originals) > RUN_AGAIN_LIMIT:
            self.message_user(
                request,
                f"Run again copies at most {RUN_AGAIN_LIMIT} tasks at a time; narrow the selection.",
                messages.ERROR,
            )
            return
        if not originals:
            self.message_user(request, "Only finished tasks can be run again.", messages.WARNING)
            return
        now, who = timezone.now(), _who(request)
        resigned, refused = 0, []
        for t in originals:
            uid = secrets.token_hex(16)
            if _verifies(t):
                # Each copy needs its own uid, so it is signed anew; the original's signature
                # vouched for the path and arguments.
                t.signature = signing.sign(t.path, t.args, t.kwargs, uid)
            elif t.error.startswith(REFUSED_PREFIX):
                try:
                    _resign(t, uid)
                    resigned += 1
                except InvalidTask as exc:
                    refused.append(f"Task {t.pk} was not re-signed: {exc}")
            # Anything else keeps its signature, which matches no uid: a row forged in the
            # database stays refused, however often it is run again.
            t.uid = uid
        copies = Task.objects.bulk_create(
            Task(
                path=t.path,
                args=t.args,
                kwargs=t.kwargs,
                signature=t.signature,
                uid=t.uid,
                queue=t.queue,
                priority=t.priority,
                max_attempts=t.max_attempts,
                timeout=t.timeout,
                run_after=now,
                enqueued_at=now,
                retried_by=who,
            )
            for t in originals
        )
        for copy in copies:
            task_enqueued.send(sender=Task, task=copy)
        transaction.on_commit(process.notify)
        self.message_user(
            request, f"Queued {len(copies)} new task(s) copied from the selection.", messages.SUCCESS
        )
        self._report_resigning(request, resigned, refused)


def _verifies(task: Task) -> bool:
    return signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature)


def _resign(task: Task, uid: str) -> None:
    """Sign a refused task anew under the current SECRET_KEY, or raise InvalidTask if it cannot run."""
    runnable(task.path)
    clean_arguments(tuple(task.args), task.kwargs)
    task.uid = uid
    task.signature = signing.sign(task.path, task.args, task.kwargs, uid)


@admin.register(Worker)
class WorkerAdmin(WorkerModelAdmin):
    """Pools, as they heartbeat; pools write these rows, so the admin only reads them."""

    list_display = ["name", "hostname", "pid", "threads", "serves", "started_at", "heartbeat", "alive"]
    ordering = ["hostname", "pid"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Worker | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Worker | None = None) -> bool:
        return False

    @admin.display(description="Queues")
    def serves(self, worker: Worker) -> str:
        return ", ".join(worker.queues) if worker.queues else "all"

    @admin.display(description="Last heartbeat", ordering="last_heartbeat")
    def heartbeat(self, worker: Worker) -> str:
        age = timezone.now() - worker.last_heartbeat
        if self._is_alive(worker):
            return f"{format_duration(age)} ago"
        # A pool killed before it could unregister keeps its row until another pool prunes it.
        limit = format_duration(settings.stale_after)
        return f"stale: no heartbeat for over {limit} ({format_duration(age)} ago)"

    @admin.display(boolean=True, description="Alive")
    def alive(self, worker: Worker) -> bool:
        return self._is_alive(worker)

    def _is_alive(self, worker: Worker) -> bool:
        return worker.last_heartbeat >= timezone.now() - timedelta(seconds=settings.stale_after)


def _pre(text: str) -> SafeString:
    return format_html('<pre class="taskq-pre">{}</pre>', text)


def _who(request: HttpRequest) -> str:
    return str(request.user.get_username())[: Task._meta.get_field("retried_by").max_length or 255]
