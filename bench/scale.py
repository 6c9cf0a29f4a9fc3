"""Scale: the claim's cost, W1 throughput, the admin and taskq_status with many rows already there."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from bench.stats import percentile
from taskq.models import Status, Task

CHUNK = 200_000
CLAIM_SAMPLES = 30
SIGNATURE = "0" * 64


def _sequence(rows: int) -> tuple[str, str, str, list[Any]]:
    """(prefix, FROM clause, the row-number expression, params) yielding 1..rows."""
    if connection.vendor == "postgresql":
        return "", "FROM generate_series(1, %s) AS g(x)", "g.x", [rows]
    if connection.vendor == "mysql":
        # MariaDB's Sequence engine: seq_1_to_N is a virtual table of 1..N.
        return "", f"FROM seq_1_to_{int(rows)}", "seq", []
    return (
        "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < %s) ",
        "FROM seq",
        "x",
        [rows],
    )


def fill(rows: int, mix: str) -> None:
    """Add ``rows`` finished tasks; with mix "queued", every fifth one queued for tomorrow instead."""
    now = timezone.now()
    past, future = now - timedelta(hours=1), now + timedelta(days=1)
    template = Task(
        path="bench.tasks.write",
        args=[0, 0.0, 0.0],
        kwargs={},
        signature=SIGNATURE,
        status=Status.SUCCEEDED,
        attempts=1,
        run_after=past,
        enqueued_at=past,
        started_at=past,
        finished_at=past,
        worker="bench:0:fill",
    )
    for done in range(0, rows, CHUNK):
        prefix, source, x, seq_params = _sequence(min(CHUNK, rows - done))
        columns, values, params = [], [], []
        for field in Task._meta.concrete_fields:
            if field.primary_key or field.generated:
                continue  # the database computes a generated column (unique_live) itself
            columns.append(connection.ops.quote_name(field.column))
            constant = field.get_db_prep_save(getattr(template, field.attname), connection)
            if mix == "queued" and field.name in {"status", "run_after", "finished_at"}:
                queued = {"status": Status.QUEUED, "run_after": future, "finished_at": None}[field.name]
                values.append(f"CASE WHEN {x} %% 5 = 0 THEN %s ELSE %s END")
                params += [field.get_db_prep_save(queued, connection), constant]
            else:
                values.append("%s")
                params.append(constant)
        table = connection.ops.quote_name(Task._meta.db_table)
        sql = f"{prefix}INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} {source}"
        with connection.cursor() as cursor:
            cursor.execute(sql, seq_params + params if prefix else params + seq_params)


def analyze() -> None:
    """Refresh the planner's statistics and visibility map, as autovacuum would soon after a bulk load."""
    table = connection.ops.quote_name(Task._meta.db_table)
    # On PostgreSQL VACUUM also sets the visibility map, without which the admin's and
    # taskq_status's index-only scans fetch every heap page of a freshly loaded table.
    statement = {"mysql": "ANALYZE TABLE", "postgresql": "VACUUM ANALYZE"}.get(connection.vendor, "ANALYZE")
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} {table}")
        if connection.vendor == "mysql":
            cursor.fetchall()


def claim_cost() -> dict[str, Any]:
    """Time claim(8) with eight due tasks among the rows, and show the claim SELECT's plan."""
    times = []
    for _ in range(CLAIM_SAMPLES):
        Task.objects.bulk_create(
            [Task(path="bench.tasks.write", args=[0, 0.0, 0.0], signature=SIGNATURE) for _ in range(8)]
        )
        p0 = time.perf_counter()
        claimed = Task.objects.claim("bench:0:claim", 8, 60.0)
        times.append((time.perf_counter() - p0) * 1000)
        Task.objects.filter(pk__in=[t.pk for t in claimed]).update(
            status=Status.SUCCEEDED, finished_at=timezone.now()
        )
    Task.objects.bulk_create([Task(path="bench.tasks.write", args=[], signature=SIGNATURE) for _ in range(8)])
    with transaction.atomic():
        qs = Task.objects.due(timezone.now()).select_for_update(skip_locked=True)[:8]
        plan = qs.explain(analyze=True) if connection.vendor == "postgresql" else qs.explain()
    Task.objects.queued().filter(worker="").update(status=Status.CANCELLED, finished_at=timezone.now())
    return {
        "claim_ms": {f"p{p}": round(percentile(times, p), 3) for p in (50, 95, 99)},
        "claim_plan": plan,
    }


def throughput(n: int, repeats: int, timeout: float) -> list[float]:
    """W1 with taskq's pool over the filled table, ``repeats`` times."""
    from bench import systems, workloads
    from bench.benchapp.models import Item
    from bench.dbtools import truncate

    rates = []
    for _ in range(repeats):
        truncate(Item)
        system = systems.make("taskq", {})
        system.start()
        try:
            rates.append(workloads.w1(system, n, timeout)["tasks_per_s"])
        finally:
            system.stop()
    return rates


def ui_times() -> dict[str, Any]:
    """The admin changelist and taskq_status, where this checkout has them."""
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.core.management import call_command, get_commands
    from django.test import Client

    out: dict[str, Any] = {}
    if admin.site.is_registered(Task):
        User.objects.filter(username="bench").delete()
        client = Client()
        client.force_login(User.objects.create_superuser("bench", "bench@example.com", "bench"))
        for label, url in [
            ("admin_changelist", "/admin/taskq/task/"),
            ("admin_queued", "/admin/taskq/task/?status__exact=queued"),
        ]:
            times, status = [], 0
            for _ in range(3):
                p0 = time.perf_counter()
                status = client.get(url).status_code
                times.append((time.perf_counter() - p0) * 1000)
            out[label] = {"ms": sorted(times)[1], "status": status}
    else:
        out["admin_changelist"] = None
    if "taskq_status" in get_commands():
        times = []
        for _ in range(3):
            p0 = time.perf_counter()
            call_command("taskq_status", stdout=io.StringIO())
            times.append((time.perf_counter() - p0) * 1000)
        out["taskq_status"] = {"ms": sorted(times)[1]}
    else:
        out["taskq_status"] = None
    return out


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill the table, then measure; leaves the table empty again."""
    from bench.benchapp.models import Item
    from bench.dbtools import truncate
    from taskq.models import Worker

    truncate(Task, Worker, Item)
    p0 = time.perf_counter()
    fill(spec["rows"], spec["mix"])
    analyze()
    out: dict[str, Any] = {"fill_s": round(time.perf_counter() - p0, 1), "rows_total": Task.objects.count()}
    out |= claim_cost()
    out["w1_tasks_per_s"] = throughput(spec["w1"], spec["repeats"], spec["timeout_s"])
    if spec.get("ui"):
        out |= ui_times()
    truncate(Task, Worker, Item)
    connection.close()
    return out
