"""How the task admin, the queue dashboard and taskq_status hold up with a million task rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskq_bench .venv/bin/python bench/admin_scale.py
    DATABASE_URL=sqlite:////tmp/taskq_bench.sqlite3 .venv/bin/python bench/admin_scale.py

Fills a dedicated database (created if missing, every task row replaced) with --rows tasks
in one INSERT ... SELECT (generate_series on PostgreSQL, a recursive CTE on SQLite), rolls a
week of them up for the dashboard, then prints the median time and the query count of each
admin page and of taskq_status. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskq_ops_bench")

# A week of tasks, newest last: most succeeded, every 50th failed, every 200th cancelled,
# every 30th succeeded on its second attempt, the newest 2,000 still queued (due, so the
# backlog lags) and 10 running.
FILL = """
INSERT INTO taskq_task (path, args, kwargs, signature, queue, priority, status, attempts,
    max_attempts, timeout, run_after, enqueued_at, started_at, finished_at, lease_expires_at,
    worker, cancel_requested, result, error, traceback, retried_by, history)
SELECT
    'bench.tasks.function_' || (g %% 23),
    jsonb_build_array(g, 'user-' || g),
    '{}'::jsonb,
    'unsigned',
    CASE WHEN g %% 10 < 7 THEN 'default' WHEN g %% 10 < 9 THEN 'emails' ELSE 'reports' END,
    0,
    s.status,
    CASE WHEN s.status = 'queued' THEN 0 WHEN s.status = 'succeeded' AND g %% 30 = 1 THEN 2 ELSE 1 END,
    3,
    NULL,
    t.at,
    t.at,
    CASE WHEN s.status IN ('queued', 'cancelled') THEN NULL ELSE t.at + interval '0.5 s' END,
    CASE WHEN s.status IN ('queued', 'running') THEN NULL ELSE t.at + interval '2 s' END,
    CASE WHEN s.status = 'running' THEN now() + interval '1 min' END,
    CASE WHEN s.status IN ('queued', 'cancelled') THEN '' ELSE 'bench:1:00000000' END,
    false,
    CASE WHEN s.status = 'succeeded' THEN to_jsonb(g) END,
    CASE WHEN s.status = 'failed' THEN 'ValueError: row ' || g || ' failed' ELSE '' END,
    CASE WHEN s.status = 'failed'
        THEN 'Traceback (most recent call last):' || repeat(E'\\n  File "bench.py", line 1', 8)
        ELSE '' END,
    '',
    CASE WHEN s.status IN ('queued', 'running') THEN '[]'::jsonb
    ELSE (CASE WHEN s.status = 'succeeded' AND g %% 30 = 1 THEN jsonb_build_array(jsonb_build_object(
            'attempt', 1, 'worker', 'bench:1:00000000', 'outcome', 'retried',
            'started_at', t.at, 'finished_at', t.at + interval '1 s',
            'error', 'ValueError: try again', 'exception', 'builtins.ValueError', 'traceback', ''))
        ELSE '[]'::jsonb END)
        || jsonb_build_array(jsonb_build_object(
            'attempt', 1, 'worker', 'bench:1:00000000', 'outcome', s.status,
            'started_at', t.at + interval '0.5 s', 'finished_at', t.at + interval '2 s',
            'error', '', 'exception', '', 'traceback', ''))
    END
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT now() - (%(rows)s - g) * interval '600 ms' AS at) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN g > %(rows)s - 2000 THEN 'queued'
    WHEN g > %(rows)s - 2010 THEN 'running'
    WHEN g %% 50 = 0 THEN 'failed'
    WHEN g %% 200 = 7 THEN 'cancelled'
    ELSE 'succeeded' END AS status) AS s
"""

# The same rows on SQLite; times are text as Django writes them, in UTC.
SQLITE_FILL = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %(rows)s),
r AS (
    SELECT n AS g, CASE
        WHEN n > %(rows)s - 2000 THEN 'queued'
        WHEN n > %(rows)s - 2010 THEN 'running'
        WHEN n %% 50 = 0 THEN 'failed'
        WHEN n %% 200 = 7 THEN 'cancelled'
        ELSE 'succeeded' END AS status,
        %(now_ms)s - (%(rows)s - n) * 600 AS at
    FROM g
),
t AS (
    SELECT r.*,
        strftime('%%Y-%%m-%%d %%H:%%M:%%S', at / 1000, 'unixepoch')
            || printf('.%%06d', (at %% 1000) * 1000) AS at_0,
        strftime('%%Y-%%m-%%d %%H:%%M:%%S', (at + 500) / 1000, 'unixepoch')
            || printf('.%%06d', ((at + 500) %% 1000) * 1000) AS at_start,
        strftime('%%Y-%%m-%%d %%H:%%M:%%S', (at + 2000) / 1000, 'unixepoch')
            || printf('.%%06d', ((at + 2000) %% 1000) * 1000) AS at_end,
        strftime('%%Y-%%m-%%dT%%H:%%M:%%S', (at + 1000) / 1000, 'unixepoch')
            || printf('.%%06d+00:00', ((at + 1000) %% 1000) * 1000) AS iso_retried,
        strftime('%%Y-%%m-%%dT%%H:%%M:%%S', (at + 2000) / 1000, 'unixepoch')
            || printf('.%%06d+00:00', ((at + 2000) %% 1000) * 1000) AS iso_end,
        status = 'succeeded' AND g %% 30 = 1 AS retried
    FROM r
)
INSERT INTO taskq_task (path, args, kwargs, signature, queue, priority, status, attempts,
    max_attempts, timeout, run_after, enqueued_at, started_at, finished_at, lease_expires_at,
    worker, cancel_requested, result, error, traceback, retried_by, history)
SELECT
    'bench.tasks.function_' || (g %% 23),
    json_array(g, 'user-' || g),
    '{}',
    'unsigned',
    CASE WHEN g %% 10 < 7 THEN 'default' WHEN g %% 10 < 9 THEN 'emails' ELSE 'reports' END,
    0,
    status,
    CASE WHEN status = 'queued' THEN 0 WHEN retried THEN 2 ELSE 1 END,
    3,
    NULL,
    at_0,
    at_0,
    CASE WHEN status IN ('queued', 'cancelled') THEN NULL ELSE at_start END,
    CASE WHEN status IN ('queued', 'running') THEN NULL ELSE at_end END,
    CASE WHEN status = 'running' THEN strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '+1 minute') END,
    CASE WHEN status IN ('queued', 'cancelled') THEN '' ELSE 'bench:1:00000000' END,
    0,
    CASE WHEN status = 'succeeded' THEN json(g) END,
    CASE WHEN status = 'failed' THEN 'ValueError: row ' || g || ' failed' ELSE '' END,
    CASE WHEN status = 'failed'
        THEN 'Traceback (most recent call last):'
            || replace(hex(zeroblob(8)), '00', char(10) || '  File "bench.py", line 1')
        ELSE '' END,
    '',
    CASE WHEN status IN ('queued', 'running') THEN '[]'
    WHEN retried THEN json_array(
        json_object('attempt', 1, 'worker', 'bench:1:00000000', 'outcome', 'retried',
            'started_at', iso_retried, 'finished_at', iso_retried,
            'error', 'ValueError: try again', 'exception', 'builtins.ValueError', 'traceback', ''),
        json_object('attempt', 2, 'worker', 'bench:1:00000000', 'outcome', status,
            'started_at', iso_end, 'finished_at', iso_end, 'error', '', 'exception', '', 'traceback', ''))
    ELSE json_array(json_object('attempt', 1, 'worker', 'bench:1:00000000', 'outcome', status,
            'started_at', iso_end, 'finished_at', iso_end, 'error', '', 'exception', '', 'traceback', ''))
    END
FROM t
"""

HEADER = f"{'median ms':>10} {'queries':>8} {'slowest query ms':>17}"
PAGES = [
    ("changelist, newest first", ""),
    ("changelist, page 50", "?p=50"),
    ("changelist, oldest first", "?o=7"),
    ("filter status=failed", "?status__exact=failed"),
    ("filter status=queued", "?status__exact=queued"),
    ("filter queue=reports", "?queue=reports"),
    ("filter function", "?path=bench.tasks.function_5"),
    ("status=cancelled & queue=reports (no rows)", "?status__exact=cancelled&queue=reports"),
    ("date hierarchy: one month", "?enqueued_at__month={month}&enqueued_at__year={year}"),
    (
        "date hierarchy: one day",
        "?enqueued_at__day={day}&enqueued_at__month={month}&enqueued_at__year={year}",
    ),
    ("search id", "?q=123456"),
    ("search function name (common)", "?q=function_7"),
    ("search error text (one task)", "?q=%22row+500000+failed%22"),
    ("search no match", "?q=nothing-matches-this"),
    ("task detail page", "{detail}"),
]


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(rows: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DELETE FROM taskq_task")
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'taskq_task'")
            cursor.execute(SQLITE_FILL, {"rows": rows, "now_ms": int(time.time() * 1000)})
            cursor.execute("ANALYZE")
        else:
            cursor.execute("TRUNCATE taskq_task RESTART IDENTITY")
            cursor.execute(FILL, {"rows": rows})
            cursor.execute("VACUUM ANALYZE taskq_task")
    return time.perf_counter() - started


def roll_up_week() -> float:
    """Roll up every minute of the last week, as the pools would have done minute by minute."""
    from taskq.models import MinuteRollup
    from taskq.rollup import KEEP, MINUTE, roll_up

    started = time.perf_counter()
    MinuteRollup.objects.all().delete()
    roll_up(limit=KEEP // MINUTE)
    return time.perf_counter() - started


class DashboardURLs:
    """A URLconf with the dashboard wired in, for a checkout where TaskAdmin does not wire it yet."""

    @property
    def urlpatterns(self) -> list[Any]:
        from django.contrib import admin
        from django.urls import include, path

        from taskq.dashboard_views import dashboard_urls

        return [
            path("admin/taskq/task/", include(dashboard_urls(admin.site))),
            path("admin/", admin.site.urls),
        ]


def dashboard_url() -> str:
    """The dashboard's path, wiring it into the URLconf first where TaskAdmin does not."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("admin:taskq_task_dashboard")
    except NoReverseMatch:
        settings.ROOT_URLCONF = DashboardURLs()
        return "/admin/taskq/task/dashboard/"


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, int, float]:
    """Median wall time, the query count, and the slowest query's time (all in ms) of ``fn``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fn()  # warm caches, as a page viewed twice would be
    times, slowest, count = [], 0.0, 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        count = len(queries.captured_queries)
        slowest = max([slowest, *(float(q["time"]) for q in queries.captured_queries)])
    return statistics.median(times) * 1000, count, slowest * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="Keep the rows if the table has --rows.")
    options = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    postgres = url.startswith(("postgres://", "postgresql://"))
    if not postgres and not url.startswith("sqlite:"):
        sys.exit("admin_scale.py fills PostgreSQL or SQLite: point DATABASE_URL at one of them")
    if postgres:
        ensure_database(url)

    import django

    django.setup()
    from django.core.signals import request_started

    # The test client sends request_started: keep taskq's pool from starting on it and
    # working (or recovering) the benchmark's rows.
    request_started.disconnect(dispatch_uid="taskq.lazy_start")
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client, RequestFactory
    from django.utils import timezone

    from taskq.models import Task
    from taskq.status import take_snapshot

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'taskq_task'")
        else:
            cursor.execute("SELECT count(*) FROM taskq_task")
        estimate = cursor.fetchone()[0]
    if options.reuse and abs(estimate - options.rows) <= options.rows // 100:
        print(f"reusing about {estimate:,} task rows")
    else:
        print(f"filling {options.rows:,} task rows on {connection.vendor} ...", flush=True)
        print(f"  INSERT ... SELECT + ANALYZE: {fill(options.rows):.1f} s")
    print(f"  roll_up() over the week: {roll_up_week():.1f} s")
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('taskq_task'))")
            print(f"  taskq_task with its indexes: {cursor.fetchone()[0]}")

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    day = timezone.localtime(Task.objects.order_by("enqueued_at").values_list("enqueued_at", flat=True)[0])
    day = day + (timezone.now() - day) / 2
    sample = Task.objects.failed().order_by("-pk").values_list("pk", flat=True)[0]
    detail = f"{sample}/change/"

    print(f"\n{'admin page':<44} {HEADER}")
    for title, query in PAGES:
        url_path = "/admin/taskq/task/" + query.format(
            day=day.day, month=day.month, year=day.year, detail=detail
        )

        def get(path: str = url_path) -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        median, count, slowest = measure(get, options.repeat)
        print(f"{title:<44} {median:>10.1f} {count:>8} {slowest:>17.1f}")

    print(f"\n{'queue dashboard':<44} {HEADER}")
    dashboard = dashboard_url()
    for title, query in [("dashboard page", ""), ("dashboard fragment (the refresh)", "?fragment=1")]:

        def get_dashboard(path: str = dashboard + query) -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        median, count, slowest = measure(get_dashboard, options.repeat)
        print(f"{title:<44} {median:>10.1f} {count:>8} {slowest:>17.1f}")

    print(f"\n{'the same list with a stock ModelAdmin':<44} {HEADER}")
    stock = stock_admin()
    for title, query in PAGES[:1] + PAGES[3:4] + PAGES[-3:-2]:
        request = RequestFactory().get("/admin/taskq/task/" + query)
        request.user = user

        def render(request: Any = request) -> None:
            stock.changelist_view(request).render()

        median, count, slowest = measure(render, options.repeat)
        print(f"{title:<44} {median:>10.1f} {count:>8} {slowest:>17.1f}")

    print(f"\n{'taskq_status':<44} {HEADER}")
    status_runs: list[tuple[str, Callable[[], Any]]] = [
        ("take_snapshot()", take_snapshot),
        ("manage.py taskq_status (table)", _status),
        ("manage.py taskq_status --json", lambda: _status("--json")),
    ]
    for title, fn in status_runs:
        median, count, slowest = measure(fn, options.repeat)
        print(f"{title:<44} {median:>10.1f} {count:>8} {slowest:>17.1f}")


def stock_admin() -> Any:
    """A ModelAdmin with the same columns and features as taskq's, and Django's defaults otherwise."""
    from django.contrib import admin

    from taskq.models import Task

    class Stock(admin.ModelAdmin):  # type: ignore[type-arg]
        list_display = ["id", "path", "status", "queue", "priority", "attempts", "enqueued_at", "worker"]
        list_filter = ["status", "queue", "path"]
        search_fields = ["=id", "path", "error"]
        date_hierarchy = "enqueued_at"
        ordering = ["-enqueued_at", "-id"]

    return Stock(Task, admin.site)


def _status(*flags: str) -> None:
    from django.core.management import call_command

    # Exits 1 on purpose: the benchmark's backlog has no live worker.
    with contextlib.suppress(SystemExit):
        call_command("taskq_status", *flags, stdout=StringIO(), stderr=StringIO())


if __name__ == "__main__":
    main()
