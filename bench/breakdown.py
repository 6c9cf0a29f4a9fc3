"""Where the time of one pickup goes, and what the database's fixed costs are on this machine.

``bench/run breakdown [--config pg-age60] [--tasks 100]`` starts one benchmark process for the
setup, which prints:

- the cost of opening a connection (what every job pays at ``CONN_MAX_AGE=0``), of a round trip
  (``SELECT 1``) and of a one-row INSERT in autocommit (a round trip plus the commit);
- the CPU one thread spends per call (``time.thread_time``) on ``enqueue``, on a bare create of the
  Task-shaped twin row, on ``claim(limit=1)`` and on recording an outcome: what the pool and the
  enqueuing thread compete for in W1;
- the pickup of W3-style tasks (one every 20 ms into an idle pool) cut into stages: inside
  ``enqueue`` until the pool is told, the dispatcher waking, its claim, and the hand-over to the
  runner until the task starts.

The stages are timed by wrapping taskq's own functions inside that process only; nothing in taskq
changes. The figures explain the run's pickup and W1 numbers; they are not part of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.configs import CONFIGS
from bench.runner import WORKDIR, child_env, prepare


def _p50_ms(fn: Callable[[], object], n: int, gap: float = 0.0) -> float:
    times = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def _fixed_costs() -> dict[str, float]:
    from django.db import connection

    from bench.benchapp.models import Item

    def connect() -> None:
        connection.ensure_connection()
        connection.close()

    def round_trip() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    def insert() -> None:
        Item.objects.create(n=-1, t_enq=0.0, t_start=0.0, t_done=0.0)

    out = {"connect_ms": _p50_ms(connect, 50)}
    connection.ensure_connection()
    out["select_1_ms"] = _p50_ms(round_trip, 200)
    out["insert_ms"] = _p50_ms(insert, 200)
    out["insert_after_20ms_idle_ms"] = _p50_ms(insert, 100, gap=0.02)
    Item.objects.filter(n=-1).delete()
    connection.close()
    return out


def _cpu_p50_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.thread_time()
        fn()
        times.append((time.thread_time() - t0) * 1000)
    return round(statistics.median(times), 3)


def _cpu_costs(n: int = 200) -> dict[str, float]:
    from bench import tasks as bench_tasks
    from bench.benchapp.models import Twin
    from taskq import options
    from taskq.models import Task

    # A queue of its own, so nothing else claims these rows and they are easy to remove.
    own = options(queue="breakdown")
    out = {"enqueue_cpu_ms": _cpu_p50_ms(lambda: own.enqueue(bench_tasks.write, -1, 0.0, 0.0), n)}
    twin = {"path": "bench.tasks.write", "args": [-1, 0.0, 0.0], "kwargs": {}, "signature": "0" * 64}
    out["bare_create_cpu_ms"] = _cpu_p50_ms(lambda: Twin.objects.create(**twin), n)
    claimed: list[Task] = []
    out["claim_1_cpu_ms"] = _cpu_p50_ms(
        lambda: claimed.extend(Task.objects.claim("breakdown", 1, 60, ["breakdown"])), n
    )
    outcomes = iter(claimed)
    out["outcome_cpu_ms"] = _cpu_p50_ms(lambda: next(outcomes).set_succeeded(None), len(claimed))
    Task.objects.filter(queue="breakdown").delete()
    Twin.objects.filter(args__0=-1).delete()
    return out


def _pickup_stages(tasks: int) -> dict[str, float]:
    from django.db import connection

    from bench import tasks as bench_tasks
    from bench.dbtools import truncate
    from taskq import enqueue, process, wake
    from taskq import runners as runners_module
    from taskq.attempt import run_task
    from taskq.models import Task, TaskQuerySet

    marks: dict[str, list[float]] = {"notify": [], "claim_start": [], "claim_end": [], "run": []}
    claim, notify = TaskQuerySet.claim, wake.task_committed

    def timed_claim(self: TaskQuerySet, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        claimed = claim(self, *args, **kwargs)
        if claimed:
            marks["claim_start"].append(started)
            marks["claim_end"].append(time.perf_counter())
        return claimed

    def timed_run(task: Task, cancel_event: threading.Event | None = None) -> Task:
        marks["run"].append(time.perf_counter())
        return run_task(task, cancel_event)

    def timed_notify() -> None:
        marks["notify"].append(time.perf_counter())
        notify()

    # A run that left tasks queued (the baseline system runs no pool) would have this pool
    # run them too, and pair their marks with this run's enqueues.
    truncate(Task)
    TaskQuerySet.claim = timed_claim  # type: ignore[method-assign]
    runners_module.run_task = timed_run  # type: ignore[attr-defined]  # the runners' own reference
    wake.task_committed = timed_notify  # what enqueue() calls once its task is committed
    calls: list[float] = []
    process.start(workers=8)
    try:
        time.sleep(0.5)  # let the pool connect, heartbeat and settle
        for i in range(tasks):
            time.sleep(0.02)
            calls.append(time.perf_counter())
            enqueue(bench_tasks.write, 300_000 + i, time.time(), 0.0)
            connection.close()  # like a view at the end of its request
        deadline = time.monotonic() + 30
        while len(marks["run"]) < tasks and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.stop()

    def stage(a: list[float], b: list[float]) -> float:
        return round(statistics.median((y - x) * 1000 for x, y in zip(a, b, strict=False)), 3)

    return {
        "tasks": len(marks["run"]),
        "enqueue_until_notify_ms": stage(calls, marks["notify"]),
        "notify_until_claim_ms": stage(marks["notify"], marks["claim_start"]),
        "claim_ms": stage(marks["claim_start"], marks["claim_end"]),
        "claim_until_start_ms": stage(marks["claim_end"], marks["run"]),
        "pickup_ms": stage(calls, marks["run"]),
    }


def child(tasks: int) -> None:
    import django

    django.setup()
    result = {"fixed": _fixed_costs(), "cpu": _cpu_costs(), "pickup": _pickup_stages(tasks)}
    from bench.benchapp.models import Item

    Item.objects.filter(n__gte=300_000, n__lt=400_000).delete()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run breakdown")
    parser.add_argument("--configs", default="sqlite,pg-age0,pg-age60,my-age60")
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    for name in args.configs.split(","):
        config = CONFIGS[name]
        prepare(config)
        proc = subprocess.run(
            [sys.executable, "-m", "bench.breakdown", "child", str(args.tasks)],
            env={**child_env(config), "PYTHONUNBUFFERED": "1"},
            cwd=WORKDIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        fixed = ", ".join(f"{k} {v}" for k, v in result["fixed"].items())
        cpu = ", ".join(f"{k} {v}" for k, v in result["cpu"].items())
        stages = ", ".join(f"{k} {v}" for k, v in result["pickup"].items())
        print(f"{name}: {fixed}\n  CPU per call (p50): {cpu}\n  pickup stages (p50): {stages}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        child(int(sys.argv[2]))
    else:
        main()
