"""Can the database be dropped right after a system stops, while its process lives on?

``bench/run dropcheck [--configs pg-age0,my-age0] [--systems taskq,executor] [--tasks 50]``: for each
setup and system, a process on a scratch database starts the system, runs a short W1, lets go of the
enqueuing thread's connection (as a finished request does), stops the system and then stays alive while
this process tries ``DROP DATABASE``, without FORCE. That is the moment a test run's teardown meets: the
code under test has stopped, the process has not exited. PostgreSQL refuses while any session is
connected (after giving them 5 s to leave); MariaDB waits for the metadata locks of open transactions,
so the attempt gives up after ``lock_wait_timeout`` = 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.configs import CONFIGS, SYSTEMS, Config
from bench.dbtools import count_sessions, server_connect
from bench.runner import WORKDIR, child_env, prepare
from bench.settings import database

SCRATCH = "taskq_bench_drop"
STOPPED = "dropcheck: stopped"
RESULTS = Path(__file__).resolve().parent / "results"


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """In the measured process (bench.child, kind "dropcheck"): a short W1, stop, wait for the verdict."""
    from django.db import connection

    from bench import systems, workloads

    system = systems.make(spec["system"], spec)
    system.start()
    try:
        workloads.w1(system, spec["w1"], spec["timeout_s"], spec["system"] != "baseline")
        connection.close()
    finally:
        system.stop()  # its worker processes too, even when W1 failed
    print(STOPPED, flush=True)
    sys.stdin.readline()  # stay alive, connections as they are, until the parent has tried
    return {"system": system.name}


def _drop(engine: str, settings: dict[str, Any], force: bool = False) -> tuple[bool, str, float]:
    """Try DROP DATABASE once: (dropped, the server's answer, seconds it took).

    ``force`` is for cleaning up: IF EXISTS, and on PostgreSQL WITH (FORCE).
    """
    name = settings["NAME"]
    assert name == SCRATCH, f"refusing to drop {name!r}: only the scratch database {SCRATCH!r}"
    conn = server_connect(engine, settings)
    started = time.monotonic()
    try:
        cursor = conn.cursor()
        if_exists = "IF EXISTS " if force else ""
        if engine == "mysql":
            cursor.execute("SET SESSION lock_wait_timeout = 5")
            cursor.execute(f"DROP DATABASE {if_exists}`{name}`")
        else:
            cursor.execute(f'DROP DATABASE {if_exists}"{name}"{" WITH (FORCE)" if force else ""}')
        return True, "dropped", time.monotonic() - started
    except Exception as exc:  # the refusal is the finding
        return False, str(exc).strip().splitlines()[0], time.monotonic() - started
    finally:
        conn.close()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the child and whatever it started (db_worker, run_huey) that is still running."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def check(config: Config, system: str, tasks: int, timeout: float) -> dict[str, Any]:
    """Run one system on a fresh scratch database and try to drop it after the stop."""
    settings = database(config.engine, 0, 0)
    _drop(config.engine, settings, force=True)  # whatever the last check left behind
    prepare(config)
    spec = {
        "kind": "dropcheck",
        "system": system,
        "w1": tasks,
        "timeout_s": timeout,
        "db_workers": 8,
        "db_worker_interval": 1.0,
        "log_dir": str(RESULTS / "logs"),
        "session_cap": 40,
    }
    command = [sys.executable, "-m", "bench.child", json.dumps(spec)]
    result: dict[str, Any] = {"config": config.name, "system": system}
    # stderr to a file: a chatty child must never block on a full pipe while we wait.
    with tempfile.TemporaryFile("w+") as errors:
        # A session of its own, so that one killpg also ends the worker processes it started.
        proc = subprocess.Popen(
            command,
            env=child_env(config),
            cwd=WORKDIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        killer = threading.Timer(timeout * 2, _kill_group, [proc])
        killer.start()
        try:
            lines = []
            for line in proc.stdout:
                if line.strip() == STOPPED:
                    break
                lines.append(line)
            else:
                errors.seek(0)
                reports = [x for x in lines if x.startswith("{")] or errors.read().strip().splitlines()
                last = (reports or ["no output"])[-1].strip()
                return result | {"error": f"exit {proc.wait()}: {last[:200]}"}
            killer.cancel()  # from here on the process must stay alive: nothing may kill it
            monitor = server_connect(config.engine, settings)
            try:
                result["sessions"] = count_sessions(config.engine, monitor, settings["NAME"])
            finally:
                monitor.close()
            dropped, answer, seconds = _drop(config.engine, settings)
            if proc.poll() is not None:
                # Its sessions went with it, so the verdict would say nothing about the system.
                return result | {"error": f"the process exited ({proc.returncode}) before the drop was tried"}
            result |= {"dropped": dropped, "answer": answer, "seconds": round(seconds, 2)}
            with contextlib.suppress(BrokenPipeError, subprocess.TimeoutExpired):
                proc.communicate("\n", timeout=60)
        finally:
            killer.cancel()
            _kill_group(proc)
            proc.wait()
    return result


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| setup | system | sessions after stop | DROP DATABASE | took s |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['system']} | - | error: {r['error'][:80]} | - |")
            continue
        verdict = "dropped" if r["dropped"] else f"**refused**: {r['answer'][:90]}"
        lines.append(f"| {r['config']} | {r['system']} | {r['sessions']} | {verdict} | {r['seconds']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    servers = [name for name, c in CONFIGS.items() if c.server]
    parser.add_argument("--configs", default=",".join(servers))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", default=str(RESULTS / f"dropcheck-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    args = parser.parse_args()
    # Every process of this command, and the children it starts, use the scratch database.
    os.environ["BENCH_PG_NAME"] = os.environ["BENCH_MY_NAME"] = SCRATCH
    configs = [CONFIGS[name] for name in args.configs.split(",")]
    if not all(c.server for c in configs):
        parser.error("dropcheck needs a database server: choose from " + ", ".join(servers))
    results = []
    try:
        for config in configs:
            for system in args.systems.split(","):
                if system == "huey-db" and config.engine == "mysql":
                    continue  # huey has no MySQL storage, as in the run itself
                result = check(config, system, args.tasks, args.timeout)
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
                Path(args.out).write_text(json.dumps(results, indent=1))
    finally:
        for engine in {c.engine for c in configs}:
            _drop(engine, database(engine, 0, 0), force=True)
    print(render(results))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
