"""Profile one workload run of a system with py-spy and summarise where its threads spend time.

``bench/run profile --config pg-age0 [--system taskq] [--tasks 2000]``: writes the raw py-spy
samples next to the results and prints the functions with the most inclusive samples, per thread role.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from bench.configs import CONFIGS
from bench.runner import WORKDIR, child_env, prepare

RESULTS = Path(__file__).resolve().parent / "results"


def summarise(raw: Path, top: int) -> str:
    """Inclusive samples per function, grouped by thread role (from the thread name py-spy records)."""
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        # "thread (tid): name;frame;frame..." with --threads; pool names end in host:pid:hex.
        name = frames[0].split(": ", 1)[-1]
        role = re.sub(r"-[^-]*:\d+:[0-9a-f]+$|[-_]?\d+$", "", name)
        totals[role] += int(count)
        for frame in dict.fromkeys(re.sub(r" \(.*?:\d+\)$", "", f) for f in frames[1:]):
            inclusive[role][frame] += int(count)
    out = []
    for role, total in totals.most_common():
        out.append(f"\n{role}: {total} samples")
        for frame, n in inclusive[role].most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run profile")
    parser.add_argument("--config", choices=list(CONFIGS), default="pg-age0")
    parser.add_argument("--system", default="taskq")
    parser.add_argument("--workload", choices=["w1", "w2", "w3"], default="w1")
    parser.add_argument("--tasks", type=int, default=None, help="tasks (the workload's default)")
    parser.add_argument("--taskq-src", default=None, help="profile the taskq package in this directory")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true", help="count threads that wait, too")
    args = parser.parse_args()
    config = CONFIGS[args.config]
    prepare(config)
    spec = {"system": args.system, "workloads": [args.workload], "idle_s": 0.1, "timeout_s": 300}
    spec |= {"w1": 2000, "w2": 400, "w2_wait": 0.05, "w3": 200, "w3_gap": 0.02}
    if args.tasks:
        spec[args.workload] = args.tasks
    raw = RESULTS / f"profile-{args.system}-{args.config}-{args.workload}.txt"
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "-r", str(args.rate), "-f", "raw", "--threads", "-o", str(raw)]
    command += ["--idle"] if args.idle else []
    command += ["--", sys.executable, "-m", "bench.child", json.dumps(spec)]
    env = child_env(config, args.taskq_src)
    proc = subprocess.run(command, env=env, cwd=WORKDIR, capture_output=True, text=True, check=True)
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    print(f"{args.workload} {args.system} on {args.config}: {result[args.workload]}")
    print(summarise(raw, args.top))


def _cli_summary() -> None:
    print(summarise(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25))


if __name__ == "__main__":
    # ``python -m bench.profile summary RAW [TOP]`` re-reads a saved profile.
    _cli_summary() if sys.argv[1:2] == ["summary"] else main()
