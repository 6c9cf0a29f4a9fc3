"""The targets taskq set itself, checked against a run's medians: what was aimed for, what was measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.report import PEERS, aggregate, fmt, markdown_table
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


def _w1_rows(agg: Agg, system: str) -> list[list[str]]:
    rows = []
    # (setup, at least this many times the best durable peer, times huey, times the executor)
    for config, peer_factor, huey_factor, exec_factor in [
        ("pg-age0", 2.0, None, None),
        ("pg-age60", None, 3.0, 0.5),
        ("pg-pool", None, 3.0, 0.5),
        ("sqlite", None, 2.0, 0.5),
    ]:
        mine = agg.get((config, system), {}).get("w1_tps")
        if peer_factor:
            peers = [agg[(config, p)]["w1_tps"] for p in PEERS if agg.get((config, p), {}).get("w1_tps")]
            r = _ratio(mine, max(peers, default=None))
            goal = f"W1 >= {peer_factor:g}x best durable peer"
            rows.append([goal, config, f"{fmt(mine, 0)}/s = {fmt(r, 2)}x", _check(r, at_least=peer_factor)])
        for other, factor in (("huey", huey_factor), ("executor", exec_factor)):
            if factor:
                r = _ratio(mine, agg.get((config, other), {}).get("w1_tps"))
                goal = f"W1 >= {factor:g}x {other}"
                rows.append([goal, config, f"{fmt(mine, 0)}/s = {fmt(r, 2)}x", _check(r, at_least=factor)])
    return rows


def _per_setup_rows(agg: Agg, system: str) -> list[list[str]]:
    rows = []
    for config in sorted({c for c, s in agg if s == system}):
        m = agg[(config, system)]
        base = agg.get((config, "baseline"), {})
        rows.append(["W2 <= 1.10x ideal", config, fmt(m["w2_ratio"], 2), _check(m["w2_ratio"], at_most=1.10)])
        p50, p99 = m["pickup_p50"], m["pickup_p99"]
        rows.append([
            "pickup p50 <= 2 ms, p99 <= 20 ms",
            config,
            f"{fmt(p50)} / {fmt(p99)} ms",
            _check(None if p50 is None or p99 is None else max(p50 / 2, p99 / 20), at_most=1),
        ])  # fmt: skip
        rows.append([
            "enqueue: one INSERT, p50 <= 1.3x bare create",
            config,
            f"{fmt(m['enqueue_queries'], 0)} query, {fmt(m['enqueue_ratio'], 2)}x",
            _check(m["enqueue_ratio"] if m["enqueue_queries"] == 1 else 99.0, at_most=1.3),
        ])  # fmt: skip
        if m["idle"] is not None:
            age0 = config.endswith("age0")
            limit = 0 if age0 else WORKERS + 1
            rows.append([
                f"sessions idle {'= 0' if age0 else f'<= {limit}'}",
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
        extra = m["rss"] - base["rss"] if m["rss"] and base.get("rss") else None
        rows.append(
            [
                "peak RSS within 10 MB of no pool",
                config,
                f"+{fmt(extra)} MB",
                _check(extra, at_most=10),
            ]
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
    if data.get("scale"):
        parts += [
            "### Targets: scale",
            markdown_table(["target", "setup", "measured", "verdict"], _scale_rows(data)),
        ]
    return "\n\n".join(parts)
