"""The targets taskq set itself, checked against a run's medians: what was aimed for, what was measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.report import aggregate, fmt, markdown_table
from bench.stats import median

if TYPE_CHECKING:
    from bench.report import Agg

WORKERS = 8


def _taskqs(agg: Agg) -> list[str]:
    return sorted({s for _, s in agg if s.startswith("taskq")})


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _check(value: float | None, at_least: float | None = None, at_most: float | None = None) -> str:
    if value is None:
        return "not measured"
    ok = (at_least is None or value >= at_least) and (at_most is None or value <= at_most)
    return "met" if ok else "**missed**"


def _peer(agg: Agg, config: str) -> str:
    """The like-for-like durable peer: huey on the database's storage (Redis huey on MariaDB: it has none)."""
    return "huey-db" if (config, "huey-db") in agg else "huey"


def _w1_rows(agg: Agg, system: str) -> list[list[str]]:
    rows = []
    for config in sorted({c for c, s in agg if s == system}):
        mine = agg[(config, system)]["w1_tps"]
        if mine is None or system == "taskq-worker":
            continue
        for other, factor in ((_peer(agg, config), 1.0), ("db-worker", 1.5)):
            if (config, other) not in agg:
                continue
            r = _ratio(mine, agg[(config, other)]["w1_tps"])
            goal = f"W1 >= {factor:g}x {other}"
            rows.append([goal, config, f"{fmt(mine, 0)}/s = {fmt(r, 2)}x", _check(r, at_least=factor)])
    return rows


def _per_setup_rows(agg: Agg, system: str) -> list[list[str]]:
    rows = []
    for config in sorted({c for c, s in agg if s == system}):
        m = agg[(config, system)]
        base = agg.get((config, "baseline"), {})
        peer = agg.get((config, _peer(agg, config)), {})
        if m["w2_ratio"] is not None:
            rows.append(
                ["W2 <= 1.10x ideal", config, fmt(m["w2_ratio"], 2), _check(m["w2_ratio"], at_most=1.10)]
            )
        # A worker process is measured by W4, its sessions and its drain; the same-process
        # pickup and enqueue targets are the web process's pool's.
        same_process = system != "taskq-worker"
        p50 = m["pickup_p50"]
        if p50 is not None and same_process:
            # At PostgreSQL's CONN_MAX_AGE=0 every pickup opens a connection: the bar is huey's.
            bar = peer.get("pickup_p50") if config == "pg-age0" else 2.0
            rows.append([
                f"pickup p50 <= {'huey-db' if config == 'pg-age0' else '2 ms'}",
                config,
                f"{fmt(p50)} ms = {fmt(_ratio(p50, bar), 2)}x the bar",
                _check(_ratio(p50, bar), at_most=1),
            ])  # fmt: skip
        if m["enqueue_p50"] is not None and same_process:
            theirs = peer.get("enqueue_p50")
            ratio = _ratio(m["enqueue_p50"], theirs)
            rows.append([
                f"enqueue: one statement, p50 <= {_peer(agg, config)}'s",
                config,
                f"{fmt(m['enqueue_queries'], 0)} statement, {fmt(m['enqueue_p50'], 2)} ms = {fmt(ratio, 2)}x",
                _check(ratio if m["enqueue_queries"] == 1 else 99.0, at_most=1.0),
            ])  # fmt: skip
        if m["w4_p50"] is not None:
            postgres = config.startswith("pg")
            rows.append([
                "W4 pickup p50 <= 5 ms" if postgres else "W4 pickup p50 (a documented figure)",
                config,
                f"{fmt(m['w4_p50'])} / {fmt(m['w4_p95'])} ms (p50 / p95)",
                _check(m["w4_p50"], at_most=5.0) if postgres else "measured",
            ])  # fmt: skip
        if m["idle"] is not None:
            age0 = config.endswith("age0")
            # A worker process listens on one session of its own (taskq.listen's rule).
            limit = (1 if system == "taskq-worker" else 0) if age0 else WORKERS + 1
            rows.append([
                f"sessions idle {'<=' if limit else '='} {limit}",
                config,
                f"{fmt(m['idle_max'], 0)} (worst repeat)",
                _check(m["idle_max"], at_most=limit),
            ])  # fmt: skip
            rows.append([
                "sessions after stop = 0",
                config,
                f"{fmt(m['after_stop_max'], 0)} (worst repeat)",
                _check(m["after_stop_max"], at_most=0),
            ])  # fmt: skip
        if system != "taskq-worker":
            extra = m["rss"] - base["rss"] if m["rss"] and base.get("rss") else None
            rows.append(
                ["peak RSS within 10 MB of no pool", config, f"+{fmt(extra)} MB", _check(extra, at_most=10)]
            )
    return rows


def _drain_rows(data: dict[str, Any]) -> list[list[str]]:
    from bench.report import aggregate_drain

    agg = aggregate_drain(data)
    rows = []
    for (config, system, shape), m in agg.items():
        if system != "taskq-worker":
            continue
        peer = "huey-db" if (config, "huey-db", shape) in agg else "huey"
        r = _ratio(m["tps"], agg.get((config, peer, shape), {}).get("tps"))
        goal = f"W5 drain >= 1.0x {peer}"
        rows.append(
            [goal, f"{config} {shape}", f"{fmt(m['tps'], 0)}/s = {fmt(r, 2)}x", _check(r, at_least=1.0)]
        )
    return rows


def _scale_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    points = [s for s in data.get("scale", []) if "error" not in s]
    for config, mix in dict.fromkeys((s["config"], s["mix"]) for s in points):
        series = sorted((s["rows"], s) for s in points if s["config"] == config and s["mix"] == mix)
        (small_n, small), (big_n, big) = series[0], series[-1]
        claim = _ratio(big["claim_ms"]["p50"], small["claim_ms"]["p50"])
        w1 = _ratio(median(big["w1_tasks_per_s"]), median(small["w1_tasks_per_s"]))
        setup = f"{config} {mix}, {small_n:,} -> {big_n:,} rows"
        rows.append(["claim cost flat (<= 1.5x)", setup, f"{fmt(claim, 2)}x", _check(claim, at_most=1.5)])
        rows.append(["W1 flat (>= 0.8x)", setup, f"{fmt(w1, 2)}x", _check(w1, at_least=0.8)])
        for key, limit in [("admin_changelist", 300), ("taskq_status", 1000)]:
            if key in big:
                ms = big[key]["ms"] if big[key] else None
                note = _check(ms, at_most=limit) if big[key] else "not in this checkout"
                rows.append([f"{key} < {limit} ms", f"{config} {mix}, {big_n:,} rows", fmt(ms, 0), note])
    return rows


def render(data: dict[str, Any]) -> str:
    """One table per taskq system (the checkout, and any variants) of every target."""
    agg = aggregate(data)
    parts = []
    for system in _taskqs(agg):
        rows = _w1_rows(agg, system) + _per_setup_rows(agg, system)
        parts += [f"### Targets: {system}", markdown_table(["target", "setup", "measured", "verdict"], rows)]
    if data.get("drain"):
        rows = _drain_rows(data)
        parts += ["### Targets: drain", markdown_table(["target", "setup", "measured", "verdict"], rows)]
    if data.get("scale"):
        parts += [
            "### Targets: scale",
            markdown_table(["target", "setup", "measured", "verdict"], _scale_rows(data)),
        ]
    return "\n\n".join(parts)
