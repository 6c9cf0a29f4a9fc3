"""The task changelist's queries, fast at a million rows.

Django's changelist counts every matching row, lists a filter's choices with DISTINCT over
the whole table, finds the date hierarchy's periods with DISTINCT over every row's
truncated date, and searches with a LIKE on every row. Each of those reads the whole
table, so here each is replaced by a read of at most a page, a capped count or a few
index probes. taskq.admin builds on this module and nothing here imports it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import tzinfo as tzinfo_type
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, models, router
from django.db.models import F, Max, Min, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast, Substr
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from taskq.features import features
from taskq.models import Status, Task, TaskQuerySet, Worker

# Columns the changelist never shows; a page of tracebacks is slow to fetch and render.
HEAVY_FIELDS = ("args", "kwargs", "result", "error", "traceback", "signature", "history")
ARGS_HEAD_CHARS = 100  # of the arguments' JSON text, read for the page's rows only
MAX_ID = 2**63 - 1
MAX_PROBES = 400  # periods the date hierarchy probes in one query; more falls back to DISTINCT
SEARCH_PATHS_LIMIT = 1000  # with more distinct paths, a search reads every row's path
UNSUCCESSFUL = [s for s in Status if s != Status.SUCCEEDED]

if TYPE_CHECKING:
    TaskModelAdmin = admin.ModelAdmin[Task]
    WorkerModelAdmin = admin.ModelAdmin[Worker]
    PaginatorBase = Paginator[Any]
else:
    # These classes are generic only in django-stubs.
    TaskModelAdmin = WorkerModelAdmin = admin.ModelAdmin
    PaginatorBase = Paginator


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
    if features(connection).loose_index_scan_by_group:
        # MariaDB plans no range on walk.v inside the dependent subquery below, so each step
        # would read the whole index; its own loose index scan serves the DISTINCT instead.
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


def search(queryset: QuerySet[Task], search_term: str) -> QuerySet[Task]:
    """Narrow ``queryset`` by each word: a number is an id, other words match the path or an error."""
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
    return queryset


class ProbingQuerySet(TaskQuerySet):
    """The admin's task queryset: finds the date hierarchy's non-empty periods by index probes.

    Django's date hierarchy runs SELECT DISTINCT over the truncated date of every matching
    row; this asks, per candidate year, month or day, whether any row falls in it.
    """

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # SQLite reads MIN(x) or MAX(x) from one end of an index only when it is the query's
        # sole aggregate; the date hierarchy's MIN and MAX together scan the whole index.
        # Each bound as a subquery, first row in index order, is a probe.
        bounds = [
            (name, a.get_source_expressions()[0].name, type(a) is Min)
            for name, a in kwargs.items()
            if type(a) in (Min, Max) and a.filter is None and isinstance(a.get_source_expressions()[0], F)
        ]
        probing = features(connections[self.db]).probes_date_bounds
        if args or len(bounds) < 2 or len(bounds) != len(kwargs) or not probing:
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
    """The task changelist: no heavy columns, and no result count it could not stand behind."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Task]:
        return super().get_queryset(request, exclude_parameters).defer(*HEAVY_FIELDS)

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if isinstance(self.result_list, QuerySet):
            # The start of each call's arguments, added to the page's query after its slice,
            # so the capped count never computes it; args and kwargs themselves stay deferred.
            self.result_list = self.result_list.annotate(
                args_head=Substr(Cast("args", TextField()), 1, ARGS_HEAD_CHARS),
                kwargs_head=Substr(Cast("kwargs", TextField()), 1, ARGS_HEAD_CHARS),
            )
        if self.paginator.capped:
            # The search form shows "N results" when N differs from the full count;
            # a capped N would be wrong, so it shows nothing instead.
            self.full_result_count = self.result_count
