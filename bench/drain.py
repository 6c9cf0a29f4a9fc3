"""W5, the drain: tasks already queued, then the worker processes start; how fast they empty the queue."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.db import connection, transaction

from bench import systems
from bench.workloads import wait_for_items

W5_BASE = 400_000
BATCH = 500  # enqueues per transaction while the backlog is built; huey's enqueue has no transaction


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Queue ``spec["tasks"]`` tasks, start the system's processes, and time them emptying the queue."""
    from bench.child import empty_tables

    empty_tables()
    system = systems.make(spec["system"], spec)
    n = spec["tasks"]
    t0 = time.time()
    atomic = system.name.startswith("taskq")
    for lo in range(0, n, BATCH):
        with transaction.atomic() if atomic else contextlib.nullcontext():
            for i in range(lo, min(lo + BATCH, n)):
                system.submit(W5_BASE + i, t0, 0.0)
    queued_s = time.time() - t0
    connection.close()
    started = time.time()
    system.start()
    try:
        rows = wait_for_items(W5_BASE, n, spec["timeout_s"])
    finally:
        system.stop()
    first, last = min(r[1] for r in rows), max(r[2] for r in rows)
    return {
        "system": system.name,
        "processes": spec["processes"],
        "threads": spec["threads"],
        "tasks": n,
        "queue_s": queued_s,
        # From the first task's start, so the processes' start-up (Django's setup) is left out.
        "drain_s": last - first,
        "tasks_per_s": n / (last - first),
        "from_start_s": last - started,
    }
