"""The orchestrator: prepare each database, run every (setup, system, repeat) in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import meta
from bench.configs import Config
from bench.dbtools import create_database
from bench.sampler import SessionSampler, summarise
from bench.settings import database

ROOT = Path(__file__).resolve().parent.parent
# Benchmark processes start here, not in ROOT: Python puts the working directory first on
# sys.path, which would shadow a variant's taskq with this checkout's.
WORKDIR = ROOT / "bench" / "results"


def variant_source(name: str, spec: str) -> str:
    """A directory holding a taskq package: ``spec`` itself, or this checkout's with diffs applied.

    ``spec`` is a directory, or one or more .diff files joined with "+", applied in order.
    """
    if not spec.endswith(".diff"):
        return spec
    # Outside the checkout, so linters and type checkers never see a second taskq package.
    target = Path(tempfile.gettempdir()) / "taskq-bench-variants" / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "taskq", target / "taskq", ignore=shutil.ignore_patterns("__pycache__"))
    for diff in spec.split("+"):
        subprocess.run(["patch", "-p1", "-s", "-d", str(target), "-i", str(Path(diff).resolve())], check=True)
    return str(target)


def child_env(config: Config, taskq_src: str | None = None) -> dict[str, str]:
    """The environment of a benchmark process for ``config``."""
    # A variant (or BENCH_TASKQ_SRC) measures another copy of the taskq package, such as a
    # proposed change, in place of this checkout's, with everything else the same.
    sources = [taskq_src or os.environ.get("BENCH_TASKQ_SRC"), str(ROOT), os.environ.get("PYTHONPATH")]
    path = os.pathsep.join(filter(None, sources))
    return {**os.environ, **config.env(), "PYTHONPATH": path}


def prepare(config: Config) -> None:
    """Create the database if needed and migrate it."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    if config.server:
        create_database(config.engine, database(config.engine, 0, 0))
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env=child_env(config),
        cwd=WORKDIR,
        check=True,
    )


def run_child(
    config: Config, spec: dict[str, Any], timeout: float, taskq_src: str | None = None
) -> dict[str, Any]:
    """Run one measured process, watching the server's sessions on the side."""
    command = [sys.executable, "-m", "bench.child", json.dumps(spec)]
    settings = database(config.engine, 0, 0)
    env = child_env(config, taskq_src)

    def launch() -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command, env=env, cwd=WORKDIR, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            # subprocess.run has killed it; record the failure and go on with the next.
            return subprocess.CompletedProcess(command, -9, "", f"timed out after {timeout:g}s")

    if config.server:
        with SessionSampler(config.engine, settings) as sampler:
            proc = launch()
        samples = sampler.samples
    else:
        proc, samples = launch(), []
    lines = proc.stdout.strip().splitlines()
    result: dict[str, Any] = {}
    if lines and lines[-1].startswith("{"):
        result = json.loads(lines[-1])
    if proc.returncode != 0:
        result.setdefault("error", f"exit {proc.returncode}")
        result["stderr"] = proc.stderr[-4000:]
    if proc.stderr.strip():
        result["stderr"] = proc.stderr[-2000:]
    phases = result.get("phases")
    if samples:
        zero = phases[0]["at"] if phases else samples[0][0]
        result["session_series"] = [(round(t - zero, 2), n) for t, n in samples]
        result["sessions"] = summarise(samples, phases or [])
        result["sessions"]["max"] = max(n for _, n in samples)
    return result


class Run:
    """One invocation of the suite, saved to ``out`` after every measurement."""

    def __init__(self, args: Any, configs: list[Config]) -> None:
        self.args = args
        self.configs = configs
        self.out = Path(args.out)
        self.data: dict[str, Any] = {
            "meta": meta.collect(configs, vars(args)),
            "runs": [],
            "drain": [],
            "scale": [],
        }

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=1))

    def workloads(self) -> None:
        a = self.args
        sources = {name: variant_source(name, spec) for name, spec in a.variants.items()}
        for config in self.configs:
            prepare(config)
        for repeat in range(a.repeats):
            for config in self.configs:
                for system in a.systems:
                    if system == "huey-db" and config.engine == "mysql":
                        continue  # huey has no MySQL storage
                    spec = {
                        "system": system,
                        "workloads": a.workloads,
                        "w1": a.w1,
                        "w2": a.w2,
                        "w2_wait": a.w2_wait,
                        "w3": a.w3,
                        "w3_gap": a.w3_gap,
                        "w4": a.w4,
                        "idle_s": a.idle,
                        "timeout_s": a.timeout,
                        "db_workers": a.db_workers,
                        "db_worker_interval": a.db_worker_interval,
                        "log_dir": str(self.out.parent / "logs"),
                        "session_cap": a.session_cap,
                    }
                    started = time.monotonic()
                    src = sources.get(system.partition(":")[2]) if system.startswith("taskq:") else None
                    result = run_child(config, spec, a.timeout * 4, src)
                    result |= {"config": config.name, "system": system, "repeat": repeat}
                    self.data["runs"].append(result)
                    self.save()
                    _progress(result, time.monotonic() - started)

    def drain(self) -> None:
        """W5: each system and shape drains the same backlog, in a fresh process per repeat."""
        a = self.args
        configs = [c for c in self.configs if a.w5_configs is None or c.name in a.w5_configs]
        for config in configs:
            prepare(config)
        for repeat in range(a.repeats):
            for config in configs:
                for system in a.w5_systems:
                    if system == "huey-db" and config.engine == "mysql":
                        continue
                    for shape in a.w5_shapes:
                        processes, threads = (int(v) for v in shape.split("x"))
                        spec = {
                            "kind": "drain",
                            "system": system,
                            "tasks": a.w5,
                            "processes": processes,
                            "threads": threads,
                            "timeout_s": a.timeout * 3,
                            "log_dir": str(self.out.parent / "logs"),
                            "session_cap": a.session_cap,
                        }
                        started = time.monotonic()
                        result = run_child(config, spec, a.timeout * 6)
                        result |= {"config": config.name, "system": system, "shape": shape, "repeat": repeat}
                        self.data["drain"].append(result)
                        self.save()
                        _progress(result, time.monotonic() - started)

    def scale(self, configs: list[Config]) -> None:
        a = self.args
        for config in configs:
            prepare(config)
            for mix in a.scale_mixes:
                for rows in a.scale_sizes:
                    spec = {
                        "kind": "scale",
                        "rows": rows,
                        "mix": mix,
                        "w1": a.scale_w1,
                        "repeats": a.repeats,
                        "timeout_s": a.timeout,
                        "ui": rows == max(a.scale_sizes),
                        "session_cap": a.session_cap,
                    }
                    started = time.monotonic()
                    result = run_child(config, spec, a.timeout * 6)
                    result |= {"config": config.name, "rows": rows, "mix": mix}
                    self.data["scale"].append(result)
                    self.save()
                    _progress(result, time.monotonic() - started)


def _progress(result: dict[str, Any], seconds: float) -> None:
    keys = ("config", "system", "shape", "repeat", "rows", "mix")
    label = " ".join(f"{k}={result[k]}" for k in keys if k in result)
    status = result.get("error") or "ok"
    print(f"[{time.strftime('%H:%M:%S')}] {label} {status} ({seconds:.0f}s)", file=sys.stderr, flush=True)
    if "error" in result:
        print(result.get("stderr", ""), file=sys.stderr, flush=True)
