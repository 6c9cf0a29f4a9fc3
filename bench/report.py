"""Turn a result file or its summary into medians, ratios and Markdown tables, printed for the docs."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sampler import resummarise
from bench.stats import median

Agg = dict[tuple[str, str], dict[str, Any]]
PEERS = ["db-worker", "huey", "huey-db"]  # durable peers: the queue a user would pick instead
SEEDS = ["thread", "executor", "thread-close"]


def _get(run: dict[str, Any], *path: str) -> Any:
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _sessions(run: dict[str, Any], kind: str) -> int | None:
    sessions = run.get("sessions")
    if not sessions:
        return None
    values = [v[kind] for k, v in sessions.items() if isinstance(v, dict) and v.get(kind) is not None]
    return max(values) if values else None


METRICS: dict[str, Any] = {
    "w1_tps": lambda r: _get(r, "w1", "tasks_per_s"),
    "w2_wall": lambda r: _get(r, "w2", "wall_s"),
    "w2_ratio": lambda r: _get(r, "w2", "ratio_to_ideal"),
    "pickup_p50": lambda r: _get(r, "w3", "pickup_ms", "p50"),
    "pickup_p95": lambda r: _get(r, "w3", "pickup_ms", "p95"),
    "pickup_p99": lambda r: _get(r, "w3", "pickup_ms", "p99"),
    "w4_p50": lambda r: _get(r, "w4", "pickup_ms", "p50"),
    "w4_p95": lambda r: _get(r, "w4", "pickup_ms", "p95"),
    "w4_p99": lambda r: _get(r, "w4", "pickup_ms", "p99"),
    "enqueue_p50": lambda r: _get(r, "w3", "enqueue_ms", "p50"),
    "enqueue_p99": lambda r: _get(r, "w3", "enqueue_ms", "p99"),
    "create_p50": lambda r: _get(r, "w3", "create_ms", "p50"),
    "enqueue_ratio": lambda r: _get(r, "w3", "enqueue_over_create_p50"),
    "enqueue_queries": lambda r: _get(r, "w3", "enqueue_queries"),
    "peak": lambda r: _sessions(r, "peak"),
    "idle": lambda r: _sessions(r, "idle"),
    "after_stop": lambda r: _get(r, "sessions", "after_stop"),
    "rss": lambda r: r.get("rss_peak_mb"),
    "helper_rss": lambda r: r.get("helper_rss_mb"),
}


def _short(error: str) -> str:
    """ "aborted", "stalled", or the exception's name: enough for a table cell."""
    head, _, rest = error.partition(": ")
    if head == "aborted":
        return "aborted: too many sessions"
    if rest.startswith("tasks failed"):
        return "tasks failed: " + rest.split(": ")[1]
    return rest.split(":")[0][:40] if rest.startswith("stalled") else head


def _worst(metric: Any, runs: list[dict[str, Any]]) -> Any:
    return max((v for v in map(metric, runs) if v is not None), default=None)


def aggregate(data: dict[str, Any]) -> Agg:
    """Median of every metric over the repeats, per (config, system); errors are counted."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in data["runs"]:
        # Older files were summarised with other rules; the raw series is the source of truth.
        if "session_series" in run:
            run["sessions"] = resummarise(run)
        groups[(run["config"], run["system"])].append(run)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, runs in groups.items():
        ok = [r for r in runs if "error" not in r]
        row: dict[str, Any] = {name: median([f(r) for r in ok]) for name, f in METRICS.items()}
        # For sessions the worst repeat matters more than the typical one.
        row["after_stop_max"] = _worst(METRICS["after_stop"], ok)
        row["idle_max"] = _worst(METRICS["idle"], ok)
        row["runs"], row["errors"] = len(ok), len(runs) - len(ok)
        row["sessions_max"] = max((_get(r, "sessions", "max") or 0 for r in runs), default=None)
        errors = sorted({_short(str(r["error"])) for r in runs if "error" in r})
        row["note"] = ", ".join(errors)
        out[key] = row
    return out


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _per_system(agg: Agg, header: list[str], cells: Callable[[dict[str, Any]], list[str]]) -> str:
    """One row per (setup, system): the two names, then ``cells`` of its medians."""
    return markdown_table(["setup", "system", *header], [[c, s, *cells(m)] for (c, s), m in agg.items()])


def workload_table(agg: Agg) -> str:
    header = [
        "W1 tasks/s", "W2 wall s (x ideal)", "pickup p50/p95/p99 ms",
        "enqueue p50/p99 ms", "bare create p50 ms", "enqueue ÷ create", "runs",
    ]  # fmt: skip
    return _per_system(agg, header, lambda m: [
            fmt(m["w1_tps"], 0),
            f"{fmt(m['w2_wall'], 2)} ({fmt(m['w2_ratio'], 2)})",
            f"{fmt(m['pickup_p50'])} / {fmt(m['pickup_p95'])} / {fmt(m['pickup_p99'])}",
            f"{fmt(m['enqueue_p50'], 2)} / {fmt(m['enqueue_p99'], 2)}",
            fmt(m["create_p50"], 2),
            fmt(m["enqueue_ratio"], 2),
            f"{m['runs']}" + (f" ({m['errors']} {m['note']})" if m["errors"] else ""),
        ])  # fmt: skip


def sessions_table(agg: Agg) -> str:
    header = [
        "peak during", "idle 2 s after (worst)", "after stop (worst)", "most seen",
        "peak RSS MB", "worker processes RSS MB",
    ]  # fmt: skip
    return _per_system(agg, header, lambda m: [
            fmt(m["peak"], 0),
            f"{fmt(m['idle'], 0)} ({fmt(m['idle_max'], 0)})",
            f"{fmt(m['after_stop'], 0)} ({fmt(m['after_stop_max'], 0)})",
            fmt(m["sessions_max"], 0) + (f" ({m['note']})" if m["errors"] else ""),
            fmt(m["rss"], 1),
            fmt(m["helper_rss"], 0),
        ])  # fmt: skip


def ratio_table(agg: Agg) -> str:
    """taskq against the best durable peer and the executor, per setup."""
    header = [
        "setup",
        "system",
        "W1/s",
        "best durable peer W1/s",
        "taskq ÷ peer",
        *(f"taskq ÷ {p}" for p in PEERS),
        "executor W1/s",
        "taskq ÷ executor",
        "one-thread INSERT ceiling/s",
    ]
    rows = []
    for config, system in sorted(k for k in agg if k[1].startswith("taskq")):
        taskq = agg[(config, system)]["w1_tps"]
        peers = [
            (agg[(config, p)]["w1_tps"], p)
            for p in PEERS
            if (config, p) in agg and agg[(config, p)]["w1_tps"]
        ]
        best = max(peers, default=(None, None))
        by_peer = {p: w for w, p in peers}
        executor = agg.get((config, "executor"), {}).get("w1_tps")
        rows.append([
            config,
            system,
            fmt(taskq, 0),
            f"{fmt(best[0], 0)} ({best[1]})" if best[0] else "-",
            fmt(taskq / best[0], 2) if taskq and best[0] else "-",
            *(fmt(taskq / w, 2) if taskq and (w := by_peer.get(p)) else "-" for p in PEERS),
            fmt(executor, 0),
            fmt(taskq / executor, 2) if taskq and executor else "-",
            # W1 enqueues from one thread, one INSERT each: no queue kept in the database can
            # beat this (huey's enqueue is a Redis push, not an INSERT).
            fmt(1000 / create, 0) if (create := agg[(config, system)]["create_p50"]) else "-",
        ])  # fmt: skip
    return markdown_table(header, rows)


def w4_table(agg: Agg) -> str:
    """W4: pickup when the task runs in another process than the one that enqueued it."""
    rows = []
    for (config, system), m in agg.items():
        if m["w4_p50"] is None:
            continue
        huey_db = agg.get((config, "huey-db"), {}).get("w4_p50")
        rows.append([
            config,
            system,
            f"{fmt(m['w4_p50'])} / {fmt(m['w4_p95'])} / {fmt(m['w4_p99'])}",
            fmt(m["w4_p50"] / huey_db, 2) if huey_db else "-",
        ])  # fmt: skip
    return markdown_table(["setup", "system", "pickup p50/p95/p99 ms", "p50 ÷ huey-db's"], rows)


def aggregate_drain(data: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """W5 medians per (setup, system, shape)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in data.get("drain", []):
        groups[(run["config"], run["system"], run["shape"])].append(run)
    out = {}
    for key, runs in groups.items():
        ok = [r for r in runs if "error" not in r]
        out[key] = {
            "tps": median([r["tasks_per_s"] for r in ok]),
            "queue_s": median([r["queue_s"] for r in ok]),
            "runs": len(ok),
            "errors": len(runs) - len(ok),
        }
    return out


def drain_table(data: dict[str, Any]) -> str:
    """W5: tasks per second emptying a backlog, against huey on the same shape."""
    agg = aggregate_drain(data)
    rows = []
    for (config, system, shape), m in agg.items():
        ratios = [
            fmt(m["tps"] / other, 2)
            if m["tps"] and (other := agg.get((config, peer, shape), {}).get("tps"))
            else "-"
            for peer in ("huey-db", "huey")
        ]
        runs = f"{m['runs']}" + (f" ({m['errors']} failed)" if m["errors"] else "")
        rows.append([config, system, shape, fmt(m["tps"], 0), fmt(m["queue_s"], 1), *ratios, runs])
    header = [
        "setup",
        "system",
        "processes x threads",
        "tasks/s",
        "backlog queued in s",
        "÷ huey-db",
        "÷ huey",
        "runs",
    ]
    return markdown_table(header, rows)


def _ui(point: dict[str, Any], key: str) -> str:
    """A UI timing; "n/a" where this checkout lacks the feature, blank where it was not measured."""
    if key not in point:
        return ""
    return fmt(point[key]["ms"], 0) if point[key] else "n/a"


def scale_table(data: dict[str, Any]) -> str:
    header = [
        "setup",
        "mix",
        "rows",
        "claim(8) p50/p95 ms",
        "W1 tasks/s (median)",
        "admin changelist ms",
        "taskq_status ms",
    ]
    rows = []
    for s in data.get("scale", []):
        if "error" in s:
            rows.append([s["config"], s["mix"], f"{s['rows']:,}", "error", "", "", ""])
            continue
        rows.append([
            s["config"],
            s["mix"],
            f"{s['rows']:,}",
            f"{fmt(s['claim_ms']['p50'], 2)} / {fmt(s['claim_ms']['p95'], 2)}",
            fmt(median(s["w1_tasks_per_s"]), 0),
            _ui(s, "admin_changelist"),
            _ui(s, "taskq_status"),
        ])  # fmt: skip
    return markdown_table(header, rows)


def render(data: dict[str, Any]) -> str:
    """All tables of a run, in Markdown."""
    agg = aggregate(data)
    parts = []
    if agg:
        parts += ["## Workloads (medians)", workload_table(agg)]
        parts += ["## W1 ratios", ratio_table(agg)]
        parts += ["## Sessions and memory (medians; worst repeat in brackets)", sessions_table(agg)]
        if any(m["w4_p50"] is not None for m in agg.values()):
            parts += ["## W4: pickup across processes (medians)", w4_table(agg)]
    if data.get("drain"):
        parts += ["## W5: draining a backlog (medians)", drain_table(data)]
    if data.get("scale"):
        parts += ["## Scale", scale_table(data)]
    from bench import targets

    parts += ["## Targets", targets.render(data)]
    if data.get("dropcheck"):
        from bench.dropcheck import render as dropcheck_table

        parts += ["## Drop check", dropcheck_table(data["dropcheck"])]
    return "\n\n".join(parts)


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))
