"""Draw the PNG charts of a result file or its summary: ``bench/run charts FILE.json [--out docs/img]``."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib  # type: ignore[import-not-found, unused-ignore]

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

from bench.report import METRICS
from bench.stats import median

VARIANT_COLOURS = ["#7fbc41", "#b8e186", "#4d9221", "#276419"]
_variants: list[str] = []


def _colour(system: str) -> str | None:
    """A fixed colour per system; shades of taskq's green for its variants, in order of appearance."""
    if not system.startswith("taskq:"):
        return COLOURS.get(system)
    if system not in _variants:
        _variants.append(system)
    return VARIANT_COLOURS[_variants.index(system) % len(VARIANT_COLOURS)]


COLOURS = {
    "taskq": "#1b7837",
    "dtasks-taskq": "#5aae61",
    "executor": "#2166ac",
    "thread": "#b2182b",
    "thread-close": "#ef8a62",
    "db-worker": "#762a83",
    "huey": "#e08214",
    "huey-db": "#fdb863",
    "taskq-worker": "#a6dba0",
    "baseline": "#999999",
}


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _runs(data: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in data["runs"]:
        if "error" not in run:
            groups[(run["config"], run["system"])].append(run)
    return groups


def _order(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    configs = list(dict.fromkeys(r["config"] for r in data["runs"]))
    systems = [s for s in dict.fromkeys(r["system"] for r in data["runs"]) if s != "baseline"]
    return configs, systems


def _bars(ax: Any, data: dict[str, Any], metric: str, ylabel: str, log: bool = False) -> None:
    groups = _runs(data)
    configs, systems = _order(data)
    width = 0.8 / max(len(systems), 1)
    for i, system in enumerate(systems):
        xs, ys, lo, hi = [], [], [], []
        for j, config in enumerate(configs):
            values = [
                v for v in (METRICS[metric](r) for r in groups.get((config, system), [])) if v is not None
            ]
            if not values:
                continue
            mid = median(values)
            assert mid is not None
            xs.append(j + (i - (len(systems) - 1) / 2) * width)
            ys.append(mid)
            lo.append(mid - min(values))
            hi.append(max(values) - mid)
        ax.bar(xs, ys, width, yerr=[lo, hi], label=system, color=_colour(system), capsize=2)
    ax.set_xticks(range(len(configs)), configs)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def throughput(data: dict[str, Any], out: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    _bars(top, data, "w1_tps", "W1 tasks/s (log)", log=True)
    top.set_title("W1: 2,000 one-write tasks, first enqueue to last finish (median, min-max)")
    top.legend(ncol=5, fontsize=8)
    _bars(bottom, data, "w2_ratio", "W2 wall ÷ ideal")
    bottom.axhline(1.10, color="black", linestyle="--", linewidth=0.8)
    bottom.set_title("W2: 400 tasks x 50 ms wait + write, 8 threads (dashed: the 1.10 target)")
    _save(fig, out / "bench-throughput.png")


def _pickup_cdf(runs: list[dict[str, Any]], levels: list[float]) -> tuple[list[float], list[float]]:
    """Pickup latencies against the fraction of tasks started by then (from raw runs or a summary)."""
    values = sorted(v for r in runs for v in r.get("w3", {}).get("pickup_all_ms", []))
    if values:
        return values, [(i + 1) / len(values) for i in range(len(values))]
    for run in runs:
        quantiles = run.get("w3", {}).get("pickup_quantiles_ms")
        if quantiles:
            return quantiles, [level / 100 for level in levels]
    return [], []


def latency(data: dict[str, Any], out: Path) -> None:
    groups = _runs(data)
    configs, systems = _order(data)
    cols = min(len(configs), 3)
    rows = -(-len(configs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(configs) :]:
        ax.set_visible(False)
    for ax, config in zip(axes.flat, configs, strict=False):
        for system in systems:
            xs, ys = _pickup_cdf(groups.get((config, system), []), data.get("pickup_quantiles", []))
            if xs:
                ax.plot([max(v, 0.01) for v in xs], ys, label=system, color=_colour(system))
        ax.set_xscale("log")
        ax.set_title(config)
        ax.set_xlabel("pickup latency, ms (log)")
        ax.axvline(2, color="black", linestyle=":", linewidth=0.8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of tasks started")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("W3: pickup latency (enqueue call to task start), all repeats; dotted: 2 ms")
    _save(fig, out / "bench-latency.png")


def connections(data: dict[str, Any], out: Path) -> None:
    groups = _runs(data)
    configs = [c for c in _order(data)[0] if not c.startswith("sqlite")]
    systems = _order(data)[1]
    if not configs:
        return
    fig, axes = plt.subplots(len(configs), 1, figsize=(11, 2.6 * len(configs)), squeeze=False)
    for ax, config in zip(axes[:, 0], configs, strict=True):
        for system in systems:
            runs = groups.get((config, system))
            # A raw run keeps the whole series; a summary keeps the first repeat's steps.
            series = runs and (runs[0].get("session_series") or runs[0].get("session_steps"))
            if not series:
                continue
            ax.plot(
                [t for t, _ in series],
                [n for _, n in series],
                label=system,
                color=_colour(system),
                linewidth=1,
            )
        ax.set_title(
            f"{config}: sessions on the bench database (first repeat; 0 s = system started)", fontsize=9
        )
        ax.set_ylabel("sessions")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(ncol=5, fontsize=8)
    axes[-1, 0].set_xlabel("seconds: W1, idle 2 s, W2, idle, W3, idle, stop")
    _save(fig, out / "bench-connections.png")


def scale(data: dict[str, Any], out: Path) -> None:
    points = [s for s in data.get("scale", []) if "error" not in s]
    if not points:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for config, mix in dict.fromkeys((s["config"], s["mix"]) for s in points):
        series = sorted((s["rows"], s) for s in points if s["config"] == config and s["mix"] == mix)
        rows = [r for r, _ in series]
        left.plot(rows, [s["claim_ms"]["p50"] for _, s in series], marker="o", label=f"{config} {mix}")
        right.plot(
            rows, [median(s["w1_tasks_per_s"]) for _, s in series], marker="o", label=f"{config} {mix}"
        )
    for ax, title in [(left, "claim(8) p50, ms"), (right, "taskq W1 tasks/s")]:
        ax.set_xscale("log")
        ax.set_xlabel("rows already in the table")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    _save(fig, out / "bench-scale.png")


def across_processes(data: dict[str, Any], out: Path) -> None:
    """W4's pickup p50 and W5's drain rate, per setup and system: round two's workloads."""
    from bench.report import aggregate_drain

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    w4 = {"runs": [r for r in data["runs"] if r.get("w4")]}
    if w4["runs"]:
        _bars(left, w4, "w4_p50", "pickup p50, ms (log)", log=True)
        left.axhline(5, color="black", linestyle=":", linewidth=0.8)
        left.set_title("W4: enqueued by a process with no pool (dotted: 5 ms)")
        left.legend(fontsize=8)
    drain = aggregate_drain(data)
    configs = list(dict.fromkeys(c for c, _, _ in drain))
    series = list(dict.fromkeys((s, shape) for _, s, shape in drain))
    width = 0.8 / max(len(series), 1)
    for i, (system, shape) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        xs = [j + offset for j, c in enumerate(configs) if (c, system, shape) in drain]
        ys = [drain[(c, system, shape)]["tps"] or 0 for c in configs if (c, system, shape) in drain]
        hatch = "//" if shape != series[0][1] else None
        right.bar(xs, ys, width, label=f"{system} {shape}", color=_colour(system), hatch=hatch)
    right.set_xticks(range(len(configs)), configs)
    right.set_ylabel("tasks/s")
    right.set_title("W5: draining 10,000 queued tasks (median)")
    right.grid(axis="y", alpha=0.3)
    if series:
        right.legend(fontsize=7)
    _save(fig, out / "bench-w4-w5.png")


def draw(data: dict[str, Any], out: Path) -> None:
    """Draw every chart the data has figures for into the directory ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    drawers = [throughput, latency, connections] if data["runs"] else []
    # Each chart only where the run has its figures, so a run without scale points leaves
    # an earlier run's scale chart in place.
    if data.get("scale"):
        drawers.append(scale)
    if any(r.get("w4") for r in data["runs"]) or data.get("drain"):
        drawers.append(across_processes)
    for drawer in drawers:
        drawer(data, out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run charts")
    parser.add_argument("results")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    draw(json.loads(Path(args.results).read_text()), out)
    print(f"charts in {out}")


if __name__ == "__main__":
    main()
