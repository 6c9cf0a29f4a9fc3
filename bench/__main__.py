"""Command line: ``bench/run [options]`` (or ``python -m bench`` inside the bench virtualenv).

``bench/run soak [options]`` runs the soak instead (bench/soak.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import meta, report
from bench.configs import CONFIGS, SYSTEMS
from bench.runner import Run

RESULTS = Path(__file__).resolve().parent / "results"


def _list(choices: list[str] | None = None) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v for v in value.split(",") if v]
        bad = [v for v in items if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {choices}")
        return items

    return parse


def _ints(value: str) -> list[int]:
    return [int(float(v)) for v in value.split(",") if v]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--configs", type=_list(list(CONFIGS)), default=list(CONFIGS))
    p.add_argument("--systems", type=_list(), default=SYSTEMS, help=f"from {SYSTEMS}, and taskq:NAME")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR|A.diff[+B.diff]",
        help="also measure system taskq:NAME: the taskq package in DIR, or this checkout's with "
        "the diffs applied (a proposed change)",
    )
    workloads = ["w1", "w2", "w3", "w4", "w5"]
    p.add_argument("--workloads", type=_list(workloads), default=workloads)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--w1", type=int, default=2000, help="W1 tasks (2000)")
    p.add_argument("--w2", type=int, default=400, help="W2 tasks (400)")
    p.add_argument("--w2-wait", type=float, default=0.05, help="W2 wait per task, s (0.05)")
    p.add_argument("--w3", type=int, default=200, help="W3 tasks (200)")
    p.add_argument("--w3-gap", type=float, default=0.02, help="W3 gap between enqueues, s (0.02)")
    p.add_argument("--w4", type=int, default=200, help="W4 tasks, enqueued every --w3-gap s (200)")
    p.add_argument("--w5", type=int, default=10_000, help="W5 backlog to drain (10000)")
    p.add_argument("--w5-shapes", type=_list(), default=["1x8", "4x2"], help="W5 PxT shapes (1x8,4x2)")
    p.add_argument("--w5-configs", type=_list(list(CONFIGS)), default=None, help="W5 setups (--configs)")
    p.add_argument(
        "--w5-systems",
        type=_list(["taskq-worker", "huey", "huey-db"]),
        default=["taskq-worker", "huey", "huey-db"],
    )
    p.add_argument("--idle", type=float, default=2.0, help="idle time after each workload, s (2)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-workload deadline, s (120)")
    p.add_argument(
        "--session-cap",
        type=int,
        default=40,
        help="abort a process with more sessions than this on the bench database (40): the bare "
        "thread leaks them, and the server is shared",
    )
    p.add_argument("--db-workers", type=int, default=8, help="db_worker processes (8)")
    p.add_argument("--db-worker-interval", type=float, default=1.0, help="db_worker --interval (1)")
    p.add_argument("--scale-configs", type=_list(list(CONFIGS)), default=["sqlite", "pg-age60", "my-age60"])
    p.add_argument("--scale-sizes", type=_ints, default=[1000, 100_000, 1_000_000])
    p.add_argument("--scale-mixes", type=_list(["finished", "queued"]), default=["finished", "queued"])
    p.add_argument("--scale-w1", type=int, default=2000, help="W1 tasks in each scale point (2000)")
    p.add_argument("--no-scale", action="store_true", help="skip the scale workload")
    p.add_argument("--only-scale", action="store_true", help="run only the scale workload")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: to check the harness")
    p.add_argument("--out", default=None, help="result JSON (bench/results/run-<time>.json)")
    return p


def main(argv: list[str]) -> int:
    if argv[:1] == ["soak"]:
        from bench import soak

        return soak.main(argv[1:])
    p = parser()
    args = p.parse_args(argv)
    args.variants = dict(v.split("=", 1) for v in args.variant)
    # Variants run right after taskq, so both meet the same moment's load.
    at = args.systems.index("taskq") + 1 if "taskq" in args.systems else len(args.systems)
    new = [f"taskq:{name}" for name in args.variants if f"taskq:{name}" not in args.systems]
    args.systems[at:at] = new
    unknown = [s for s in args.systems if s not in SYSTEMS and s.partition(":")[2] not in args.variants]
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {SYSTEMS} or add --variant NAME=DIR")
    if args.quick:
        args.repeats, args.w1, args.w2, args.w3, args.w4, args.w5, args.idle = 1, 200, 80, 50, 50, 500, 1.0
        args.scale_sizes, args.scale_w1 = [1000, 20_000], 200
    args.out = args.out or str(RESULTS / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json")
    configs = [CONFIGS[name] for name in args.configs]
    run = Run(args, configs)
    if not args.only_scale:
        if set(args.workloads) - {"w5"}:
            run.workloads()
        if "w5" in args.workloads:
            run.drain()
    if not args.no_scale:
        run.scale([CONFIGS[name] for name in args.scale_configs])
    run.data["meta"]["machine"]["load_at_end"] = meta.load()
    run.save()
    print(report.render(run.data))
    print(f"\nresults: {run.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
