"""One measured process: set up Django, start one system, run W1-W3 with idle gaps, stop it.

Run by the orchestrator as ``python -m bench.child '<json spec>'``; prints one JSON line last.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any


def main(spec: dict[str, Any]) -> dict[str, Any]:
    """Set Django up, guard the server's sessions, and run what ``spec`` asks for."""
    import os

    import django

    if spec.get("system") == "huey-db":
        # Read by bench/settings.py: huey keeps its queue in the bench database.
        os.environ["BENCH_HUEY_STORAGE"] = "db"
    django.setup()
    from django.conf import settings

    engine = {"postgresql": "postgres", "mysql": "mysql"}.get(
        settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[1]
    )
    if engine and spec.get("session_cap"):
        from bench.watchdog import guard

        guard(engine, settings.DATABASES["default"], spec["session_cap"])
    if spec.get("kind") == "scale":
        from bench import scale

        return scale.run(spec)
    if spec.get("kind") == "drain":
        from bench import drain

        return drain.run(spec)
    if spec.get("kind") == "dropcheck":
        from bench import dropcheck

        return dropcheck.child(spec)
    return run_workloads(spec)


def empty_tables() -> None:
    """Truncate every table a system writes, so each run starts from nothing."""
    from django.db import connection

    from bench.benchapp.models import Item, Twin
    from bench.dbtools import truncate
    from taskq.models import Task, Worker

    tables: list[Any] = [Item, Twin, Task, Worker]
    try:
        from django_tasks_db.models import (  # type: ignore[import-not-found, unused-ignore]
            DBTaskResult,
        )

        tables.append(DBTaskResult)
    except ImportError:
        pass
    truncate(*tables)
    connection.close()


def run_workloads(spec: dict[str, Any]) -> dict[str, Any]:
    """Run W1-W4 against one system with idle gaps, then stop it; return timings and phases."""
    from django.db import connection

    from bench import systems, workloads

    empty_tables()

    system = systems.make(spec["system"], spec)
    # The baseline runs nothing, so there is nothing to wait for.
    finish = spec["system"] != "baseline"
    idle, timeout = spec["idle_s"], spec["timeout_s"]
    phases: list[dict[str, Any]] = []
    out: dict[str, Any] = {"system": system.name, "phases": phases}
    system.start()
    phases.append({"name": "started", "at": time.time()})

    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("w1", lambda: workloads.w1(system, spec["w1"], timeout, finish)),
        ("w2", lambda: workloads.w2(system, spec["w2"], spec["w2_wait"], timeout, finish)),
        ("w3", lambda: workloads.w3(system, spec["w3"], spec["w3_gap"], timeout, finish)),
        ("w4", lambda: workloads.w4(system, spec.get("w4", spec["w3"]), spec["w3_gap"], timeout)),
    ]
    for name, run in plan:
        if name not in spec["workloads"] or (name == "w4" and not system.cross_process):
            continue
        begin = time.time()
        out[name] = run()
        end = time.time()
        if name == "w1":
            out["helper_rss_mb"] = _helper_rss_mb(system.helper_pids())
        # The enqueuing thread (a request, in a real site) lets go of its session, so the
        # idle count shows only what the system itself keeps open.
        connection.close()
        time.sleep(idle)
        phases.append({"name": name, "begin": begin, "end": end, "idle_at": time.time()})
        time.sleep(0.3)

    system.stop()
    phases.append({"name": "stopped", "at": time.time()})
    time.sleep(0.4)
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _helper_rss_mb(pids: list[int]) -> float | None:
    if not pids:
        return None
    import psutil  # type: ignore[import-untyped, unused-ignore]

    return float(sum(psutil.Process(pid).memory_info().rss for pid in pids)) / 2**20


if __name__ == "__main__":
    try:
        result = main(json.loads(sys.argv[1]))
    except Exception as exc:
        import os
        import traceback

        traceback.print_exc()
        sys.stdout.write("\n" + json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        sys.stdout.flush()
        # A failed system may have threads stuck for good: do not wait for them.
        os._exit(2)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
