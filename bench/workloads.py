"""W1 (overhead), W2 (I/O-bound), W3 (latency) and W4 (pickup across processes), run against one system."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.benchapp.models import Item, Twin
from bench.stats import percentile
from bench.systems import STALL_S, THREADS, System

# Each workload writes its own range of Item.n, so one table serves all three.
W1_BASE, W2_BASE, W3_BASE, W4_BASE, PROBE_N = 0, 100_000, 200_000, 300_000, 900_000


def _submit_all(system: System, base: int, n: int, wait: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for i in range(n):
        if time.monotonic() > deadline:
            raise TimeoutError(f"stalled: only {i} of {n} tasks handed over within {timeout:g}s")
        system.submit(base + i, time.time(), wait)


def wait_for_items(lo: int, count: int, timeout: float) -> list[tuple[float, float, float]]:
    """Poll until ``count`` items in [lo, lo + count) exist; return their (t_enq, t_start, t_done)."""
    rows = Item.objects.filter(n__gte=lo, n__lt=lo + count)
    deadline = time.monotonic() + timeout
    seen, progress_at = -1, time.monotonic()
    while (done := rows.count()) < count:
        now = time.monotonic()
        if done != seen:
            seen, progress_at = done, now
        elif now - progress_at > STALL_S:
            raise TimeoutError(f"stalled: {done} of {count} tasks finished, none in the last {STALL_S:g}s")
        if now > deadline:
            raise TimeoutError(f"only {done} of {count} tasks finished within {timeout}s")
        time.sleep(0.05)
    return list(rows.values_list("t_enq", "t_start", "t_done"))


def w1(system: System, n: int, timeout: float, wait_results: bool = True) -> dict[str, Any]:
    """Throughput: ``n`` one-write tasks, from the first enqueue to the last finish."""
    t0 = time.time()
    _submit_all(system, W1_BASE, n, 0.0, timeout)
    submitted = time.time()
    result: dict[str, Any] = {"tasks": n, "submit_s": submitted - t0}
    if wait_results:
        done = max(row[2] for row in wait_for_items(W1_BASE, n, timeout))
        result |= {"wall_s": done - t0, "tasks_per_s": n / (done - t0)}
    return result


def w2(system: System, n: int, wait: float, timeout: float, wait_results: bool = True) -> dict[str, Any]:
    """I/O-bound: ``n`` tasks that wait ``wait`` seconds then write; wall time against the ideal."""
    ideal = n * wait / THREADS
    t0 = time.time()
    _submit_all(system, W2_BASE, n, wait, timeout)
    result: dict[str, Any] = {"tasks": n, "ideal_s": ideal}
    if wait_results:
        done = max(row[2] for row in wait_for_items(W2_BASE, n, timeout))
        result |= {"wall_s": done - t0, "ratio_to_ideal": (done - t0) / ideal}
    return result


def _twin(n: int, t: float) -> None:
    Twin.objects.create(path="bench.tasks.write", args=[n, t, 0.0], kwargs={}, signature="0" * 64)


def w3(system: System, n: int, gap: float, timeout: float, wait_results: bool = True) -> dict[str, Any]:
    """Latency: ``n`` tasks, one every ``gap`` s; pickup latency and time inside enqueue vs a bare create."""
    with CaptureQueriesContext(connection) as probe:
        system.submit(PROBE_N, time.time(), 0.0)
    enqueue_ms: list[float] = []
    create_ms: list[float] = []
    start = time.monotonic()
    for i in range(n):
        _sleep_until(start + i * gap)
        t_enq = time.time()
        p0 = time.perf_counter()
        system.submit(W3_BASE + i, t_enq, 0.0)
        enqueue_ms.append((time.perf_counter() - p0) * 1000)
        # Half a gap later, the yardstick: one bare INSERT of a row shaped like a Task.
        _sleep_until(start + (i + 0.5) * gap)
        p0 = time.perf_counter()
        _twin(i, t_enq)
        create_ms.append((time.perf_counter() - p0) * 1000)
    result: dict[str, Any] = {
        "tasks": n,
        "enqueue_queries": len(probe.captured_queries),
        "enqueue_ms": _summary(enqueue_ms),
        "create_ms": _summary(create_ms),
        "enqueue_over_create_p50": percentile(enqueue_ms, 50) / percentile(create_ms, 50),
    }
    if wait_results:
        rows = wait_for_items(W3_BASE, n, timeout)
        pickup = sorted((t_start - t_enq) * 1000 for t_enq, t_start, _ in rows)
        result |= {"pickup_ms": _summary(pickup), "pickup_all_ms": [round(v, 3) for v in pickup]}
    return result


def w4(system: System, n: int, gap: float, timeout: float) -> dict[str, Any]:
    """Pickup across processes: ``n`` tasks, one every ``gap`` s, run by another process than this one."""
    start = time.monotonic()
    for i in range(n):
        _sleep_until(start + i * gap)
        system.submit(W4_BASE + i, time.time(), 0.0)
    rows = wait_for_items(W4_BASE, n, timeout)
    pickup = sorted((t_start - t_enq) * 1000 for t_enq, t_start, _ in rows)
    return {"tasks": n, "pickup_ms": _summary(pickup), "pickup_all_ms": [round(v, 3) for v in pickup]}


def _summary(values: list[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(values, p), 3) for p in (50, 95, 99)}


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
