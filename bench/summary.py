"""Shrink a run's result file to a summary small enough for git, from which its tables and charts redraw.

``bench/run summary RUN.json [--dropcheck DROPCHECK.json] --out bench/summary-<date>.json``

A raw run keeps every pickup latency and a session count every 100 ms, hundreds of kilobytes per run. The
summary keeps each repeat's figures, the sessions already summarised, the pickup latencies of each
(setup, system) as quantiles, and the session series of its first repeat only where the count changes.
``bench/run table`` and ``bench/run charts`` read either kind of file.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.sampler import resummarise

QUANTILES = [*range(0, 100, 5), 99, 100]  # percent: enough points to draw a distribution
KEPT = ("config", "system", "repeat", "error", "w1", "w2", "rss_peak_mb", "helper_rss_mb")
DROPPED_SCALE = ("session_series", "claim_plan")  # the plans are quoted in the docs where they matter


def quantile(values: list[float], percent: float) -> float:
    """The ``percent`` quantile of sorted ``values``, by the nearest rank."""
    rank = round(percent / 100 * (len(values) - 1))
    return values[rank]


def steps(series: list[list[float]]) -> list[list[float]]:
    """The points of a session series where the count changes, and the point just before each change."""
    kept: list[list[float]] = []
    for i, (t, n) in enumerate(series):
        last = i == len(series) - 1
        changes = i == 0 or last or n != series[i - 1][1] or n != series[i + 1][1]
        if changes:
            kept.append([round(t, 1), n])
    return kept


def rounded(value: Any) -> Any:
    """``value`` with every float cut to six significant digits, enough for every figure the tables print."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def _shrink(run: dict[str, Any], pickups: list[float] | None, first: bool) -> dict[str, Any]:
    out = {key: run[key] for key in KEPT if key in run}
    sessions = resummarise(run)
    if sessions is not None:
        out["sessions"] = sessions
    if "w3" in run:
        out["w3"] = {k: v for k, v in run["w3"].items() if k != "pickup_all_ms"}
        if first and pickups:
            out["w3"]["pickup_quantiles_ms"] = [quantile(pickups, q) for q in QUANTILES]
    if "w4" in run:
        out["w4"] = {k: v for k, v in run["w4"].items() if k != "pickup_all_ms"}
    if first and run.get("session_series"):
        out["session_steps"] = steps(run["session_series"])
    return out


def summarise(data: dict[str, Any], dropcheck: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The summary of one run's result file (and, optionally, its drop check)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in data["runs"]:
        groups[(run["config"], run["system"])].append(run)
    runs = []
    for group in groups.values():
        ok = [r for r in group if "error" not in r]
        pickups = sorted(v for r in ok for v in r.get("w3", {}).get("pickup_all_ms", []))
        runs += [_shrink(r, pickups, first=bool(ok) and r is ok[0]) for r in group]
    scale = [{k: v for k, v in point.items() if k not in DROPPED_SCALE} for point in data.get("scale", [])]
    out: dict[str, Any] = {
        "summary": True,
        "pickup_quantiles": QUANTILES,
        "meta": data.get("meta", {}),
        "runs": rounded(runs),
        "scale": rounded(scale),
        "drain": rounded([{k: v for k, v in r.items() if k != "stderr"} for r in data.get("drain", [])]),
    }
    if dropcheck is not None:
        out["dropcheck"] = dropcheck
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run summary", description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a run's result file")
    parser.add_argument("--dropcheck", help="the result file of `bench/run dropcheck` taken with it")
    parser.add_argument("--out", required=True, help="the summary to write: bench/summary-<date>.json")
    args = parser.parse_args()
    data = json.loads(Path(args.results).read_text())
    dropcheck = json.loads(Path(args.dropcheck).read_text()) if args.dropcheck else None
    Path(args.out).write_text(json.dumps(summarise(data, dropcheck), separators=(",", ":")) + "\n")
    print(f"summary: {args.out} ({Path(args.out).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
