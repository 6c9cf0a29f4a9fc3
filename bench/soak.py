"""The soak: N tasks through gunicorn (-w 2 --threads 4), enqueued over HTTP, watched every second.

``bench/run soak [--configs sqlite,pg-age60] [--tasks 100000]``. For each database setup, one
child process empties the tables, starts gunicorn with deploy/gunicorn.conf.py on bench/soak_site.py,
posts batches of tasks to its view (10 % fail every attempt, 10 % fail once then succeed), and
samples each gunicorn process's RSS and the database's sessions (SQLite: the processes' open
handles on its files) every second. At the end it checks that every task reached a final state,
that no task ran more often than planned (from the task's own table of calls), and fits the
slope of RSS over the second half of the tasks. Results go to bench/results/soak-<time>.json
(not committed) and the charts to docs/img/soak-<config>.png.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import meta
from bench.configs import CONFIGS
from bench.runner import ROOT, WORKDIR, child_env, prepare

RESULTS = ROOT / "bench" / "results"
IMAGES = ROOT / "docs" / "img"
SETTINGS = "bench.soak_settings"
# Calls each kind of task makes: plan() in bench/soak_site.py, with the task's 3 attempts.
MAX_ATTEMPTS = 3
# The target: memory flat over the second half, under this many MB per 10,000 tasks.
RSS_TARGET_MB = 1.0
PER_TASKS = 10_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run soak", description=__doc__.splitlines()[0])
    p.add_argument(
        "--configs", default="sqlite,pg-age60", help="setups from bench/configs.py (sqlite,pg-age60)"
    )
    p.add_argument("--tasks", type=int, default=100_000, help="tasks in each run (100000)")
    p.add_argument("--batch", type=int, default=10, help="tasks per HTTP request (10)")
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (4)")
    p.add_argument(
        "--backlog",
        type=int,
        default=2000,
        help="pause enqueuing while this many tasks are unfinished (2000)",
    )
    p.add_argument(
        "--stall", type=float, default=120.0, help="give up after this long without progress, s (120)"
    )
    p.add_argument("--out", default=None, help="result JSON (bench/results/soak-<time>.json)")
    p.add_argument("--charts", default=str(IMAGES), help="directory for soak-<config>.png (docs/img)")
    p.add_argument("--no-charts", action="store_true")
    return p


def main(argv: list[str]) -> int:
    """Run the soak on each setup, save the results, print a summary and draw the charts."""
    args = parser().parse_args(argv)
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        parser().error(f"unknown configs {unknown}; choose from {sorted(CONFIGS)}")
    # Databases of the soak's own, so it never empties another run's tables.
    os.environ.setdefault("BENCH_PG_NAME", "taskq_soak")
    os.environ.setdefault("BENCH_MY_NAME", "taskq_soak")
    os.environ.setdefault("BENCH_SQLITE_PATH", str(RESULTS / "soak.sqlite3"))
    out = Path(args.out or RESULTS / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json")
    configs = [CONFIGS[name] for name in names]
    data: dict[str, Any] = {"meta": meta.collect(configs, vars(args)), "runs": []}
    for config in configs:
        if config.engine == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(os.environ["BENCH_SQLITE_PATH"] + suffix).unlink(missing_ok=True)
        prepare(config)
        spec = {k: getattr(args, k) for k in ("tasks", "batch", "clients", "backlog", "stall")}
        env = {**child_env(config), "DJANGO_SETTINGS_MODULE": SETTINGS}
        print(
            f"[{time.strftime('%H:%M:%S')}] soak {config.name}: {args.tasks} tasks",
            file=sys.stderr,
            flush=True,
        )
        proc = subprocess.run(
            [sys.executable, "-m", "bench.soak", "child", json.dumps(spec)],
            env=env,
            cwd=WORKDIR,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        if proc.returncode != 0:
            result.setdefault("error", f"exit {proc.returncode}")
        result["config"] = config.name
        data["runs"].append(result)
        data["meta"]["machine"]["load_at_end"] = meta.load()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1))
    print(render(data))
    if not args.no_charts:
        for run in data["runs"]:
            if run.get("samples"):
                print(f"chart: {chart(run, Path(args.charts))}")
    print(f"results: {out}")
    return 0 if all(verdict(run)["ok"] for run in data["runs"]) else 1


# The child: one setup, one gunicorn, one run ---------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the soak once against the database in the environment; return its figures."""
    import django

    django.setup()
    from django.db import connection

    from bench.dbtools import truncate
    from bench.soak_site import CALLS_TABLE
    from taskq.models import Task, Worker

    truncate(Task, Worker)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {CALLS_TABLE}")
        cursor.execute(f"CREATE TABLE {CALLS_TABLE} (n integer NOT NULL, pid integer NOT NULL)")
        cursor.execute(f"CREATE INDEX {CALLS_TABLE}_n ON {CALLS_TABLE} (n)")
    connection.close()

    server = Gunicorn()
    sampler = Sampler(server, spec["tasks"])
    client = Enqueuer(server.port, spec, sampler)
    out: dict[str, Any] = {"tasks": spec["tasks"], "vendor": connection.vendor}
    started = time.monotonic()
    try:
        server.start()
        sampler.start()
        client.run()
        out["enqueue_s"] = round(time.monotonic() - started, 1)
        out["stalled"] = not sampler.wait_for_all(spec["stall"])
        out["run_s"] = round(time.monotonic() - started, 1)
    finally:
        sampler.stop()
        out["gunicorn_exit"] = server.stop()
    out["sessions_after_stop"] = sessions_after_stop()
    out["enqueued"] = client.enqueued
    out["client_errors"] = client.errors[:10]
    out["samples"] = sampler.samples
    out["worker_pids"] = sorted(sampler.pids_seen)
    out |= check(spec["tasks"])
    out["rss_slopes"] = rss_slopes(sampler.samples, spec["tasks"])
    return out


def sessions_after_stop() -> int | None:
    """The bench database's sessions once gunicorn has exited (None on SQLite, which has none)."""
    from django.conf import settings
    from django.db import connection

    from bench.dbtools import count_sessions, server_connect

    if connection.vendor != "postgresql":
        return None
    db = settings.DATABASES["default"]
    connection.close()
    # A closed session lingers in pg_stat_activity for a moment while its backend exits.
    time.sleep(0.5)
    watcher = server_connect("postgres", db)
    try:
        return count_sessions("postgres", watcher, db["NAME"])
    finally:
        watcher.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """gunicorn with the deploy config, as the Docker image runs it, on a free local port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.log = WORKDIR / f"soak-gunicorn-{os.getpid()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py")]
        command += ["-w", "2", "--threads", "4", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--access-logfile", "/dev/null", "django.core.wsgi:get_wsgi_application()"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 60
        while len(self.workers()) < 2 or not self._listening():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn did not start; see {self.log}")
            time.sleep(0.2)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def workers(self) -> list[Any]:
        """The worker processes now serving (psutil.Process objects)."""
        import psutil  # type: ignore[import-untyped, unused-ignore]

        if self.proc is None:
            return []
        try:
            return list(psutil.Process(self.proc.pid).children())
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> int | None:
        """SIGTERM, as a deploy stops it: the pools stop gracefully; return the exit status."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Sampler:
    """Every second: tasks finished, sessions (or open handles on SQLite), each worker's RSS."""

    def __init__(self, server: Gunicorn, total: int, interval: float = 1.0) -> None:
        self.server = server
        self.total = total
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.pids_seen: set[int] = set()
        self.finished = 0
        self.enqueued = 0
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> None:
        from django.db import connection

        self.vendor = connection.vendor
        self._zero = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from django.conf import settings
        from django.db import connection

        from bench.dbtools import count_sessions, server_connect
        from taskq.models import FINISHED, Task

        db = settings.DATABASES["default"]
        watcher = server_connect("postgres", db) if self.vendor == "postgresql" else None
        try:
            while not self._stop.is_set():
                at = round(time.monotonic() - self._zero, 1)
                finished = Task.objects.filter(status__in=FINISHED).count()
                if watcher is not None:
                    sessions = count_sessions("postgres", watcher, db["NAME"])
                else:
                    sessions = self._sqlite_handles(str(db["NAME"]))
                rss = {}
                for proc in self.server.workers():
                    try:
                        rss[str(proc.pid)] = round(proc.memory_info().rss / 2**20, 2)
                    except Exception:
                        continue
                self.pids_seen.update(int(pid) for pid in rss)
                sample = {"t": at, "finished": finished, "enqueued": self.enqueued, "sessions": sessions}
                self.samples.append(sample | {"rss_mb": rss})
                with self._progress:
                    self.finished = finished
                    self._progress.notify_all()
                if len(self.samples) % 15 == 0:
                    print(f"  t={at:.0f}s {sample} rss={rss}", file=sys.stderr, flush=True)
                self._stop.wait(max(self.interval - (time.monotonic() - self._zero - at), 0.0))
        finally:
            connection.close()
            if watcher is not None:
                watcher.close()

    def _sqlite_handles(self, path: str) -> int:
        """Open handles of the gunicorn workers on the database's files (SQLite has no sessions)."""
        count = 0
        for proc in self.server.workers():
            try:
                count += sum(1 for f in proc.open_files() if f.path.startswith(path))
            except Exception:
                continue
        return count

    def wait_below(self, backlog: int, enqueued: int) -> None:
        """Block while more than ``backlog`` of the ``enqueued`` tasks are unfinished."""
        with self._progress:
            self._progress.wait_for(
                lambda: enqueued - self.finished <= backlog or self._stop.is_set(), timeout=5
            )

    def wait_for_all(self, stall: float) -> bool:
        """Wait until every task is finished; False if none finished for ``stall`` seconds."""
        last, since = -1, time.monotonic()
        with self._progress:
            while self.finished < self.total:
                if self.finished != last:
                    last, since = self.finished, time.monotonic()
                elif time.monotonic() - since > stall:
                    return False
                self._progress.wait(timeout=5)
        return True


class Enqueuer:
    """Clients posting batches to the view over keep-alive connections, held back by the backlog."""

    def __init__(self, port: int, spec: dict[str, Any], sampler: Sampler) -> None:
        self.port = port
        self.spec = spec
        self.sampler = sampler
        self.next = 0
        self.enqueued = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def _take(self) -> tuple[int, int] | None:
        with self._lock:
            if self.next >= self.spec["tasks"]:
                return None
            start, count = self.next, min(self.spec["batch"], self.spec["tasks"] - self.next)
            self.next += count
            return start, count

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            while (batch := self._take()) is not None:
                self.sampler.wait_below(self.spec["backlog"], self.enqueued)
                start, count = batch
                for _ in range(5):  # a dropped keep-alive connection is retried on a new one
                    try:
                        conn.request("POST", f"/soak/enqueue?start={start}&count={count}")
                        response = conn.getresponse()
                        body = response.read()
                    except (OSError, http.client.HTTPException) as exc:
                        conn.close()
                        self._error(f"{start}: {type(exc).__name__}: {exc}")
                        continue
                    if response.status == 200:
                        with self._lock:
                            self.enqueued += count
                            self.sampler.enqueued = self.enqueued
                        break
                    self._error(f"{start}: HTTP {response.status} {body[:200]!r}")
                else:
                    raise RuntimeError(
                        f"could not enqueue tasks {start}..{start + count - 1}: {self.errors[-1]}"
                    )
        finally:
            conn.close()

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._client, name=f"soak-client-{i}")
            for i in range(self.spec["clients"])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def check(total: int) -> dict[str, Any]:
    """Lost tasks, tasks run more (or fewer) times than planned, and final states against the plan."""
    from django.db import connection
    from django.db.models import Count

    from bench.soak_site import CALLS_TABLE, plan
    from taskq.models import FINISHED, Status, Task

    statuses = dict(Task.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n, count(*) FROM {CALLS_TABLE} GROUP BY n")
        calls = dict(cursor.fetchall())
    expected = {n: min(plan(n) + 1, MAX_ATTEMPTS) for n in range(total)}
    outcome = {n: (Status.FAILED if plan(n) >= MAX_ATTEMPTS else Status.SUCCEEDED) for n in range(total)}
    wrong = 0
    for n, status in Task.objects.values_list("args__0", "status").iterator(chunk_size=5000):
        wrong += status != outcome[n]
    finished = sum(statuses.get(s, 0) for s in FINISHED)
    return {
        "statuses": statuses,
        "rows": sum(statuses.values()),
        "lost": total - finished,
        "run_twice": sum(1 for n, c in calls.items() if c > expected.get(n, 0)),
        "calls_short": sum(1 for n, want in expected.items() if calls.get(n, 0) < want),
        "calls": sum(calls.values()),
        "calls_planned": sum(expected.values()),
        "wrong_status": wrong,
    }


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y on x, or None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx


def rss_slopes(samples: list[dict[str, Any]], total: int) -> dict[str, float | None]:
    """Each worker's RSS slope over the second half of the tasks, in MB per 10,000 tasks finished."""
    half = [s for s in samples if s["finished"] >= total / 2]
    pids = sorted({pid for s in half for pid in s["rss_mb"]})
    out: dict[str, float | None] = {}
    for pid in pids:
        fitted = slope([(s["finished"], s["rss_mb"][pid]) for s in half if pid in s["rss_mb"]])
        out[pid] = None if fitted is None else round(fitted * PER_TASKS, 3)
    return out


# Reading the results ----------------------------------------------------------------------


def verdict(run: dict[str, Any]) -> dict[str, Any]:
    """Pass or fail against the targets: none lost, none run twice, RSS flat over the second half."""
    slopes = [v for v in run.get("rss_slopes", {}).values() if v is not None]
    worst = max(slopes, default=None)
    checks = {
        "completed": "error" not in run and not run.get("stalled", True),
        "none_lost": run.get("lost") == 0,
        "none_run_twice": run.get("run_twice") == 0 and run.get("calls_short") == 0,
        "states_as_planned": run.get("wrong_status") == 0,
        "rss_flat": worst is not None and worst < RSS_TARGET_MB,
    }
    return {"ok": all(checks.values()), "checks": checks, "worst_rss_slope": worst}


def sessions_summary(run: dict[str, Any]) -> dict[str, Any]:
    """Sessions at the start, their peak, and at the end of the run."""
    values = [s["sessions"] for s in run.get("samples", [])]
    if not values:
        return {}
    return {"first": values[0], "max": max(values), "last": values[-1]}


def render(data: dict[str, Any]) -> str:
    """A plain-text summary of each run."""
    lines = []
    for run in data["runs"]:
        v = verdict(run)
        rss = run.get("samples", [{}])[-1].get("rss_mb", {}) if run.get("samples") else {}
        lines += [
            f"== soak {run['config']}: {run.get('tasks')} tasks, {run.get('run_s')} s"
            + (f" ERROR {run['error']}" if "error" in run else ""),
            f"   statuses {run.get('statuses')}; lost {run.get('lost')}; run twice {run.get('run_twice')};"
            f" calls {run.get('calls')}/{run.get('calls_planned')} planned; short {run.get('calls_short')};"
            f" wrong state {run.get('wrong_status')}",
            f"   RSS at the end {rss} MB; slope over the second half {run.get('rss_slopes')} MB/10k tasks",
            f"   sessions {sessions_summary(run)}; workers seen {run.get('worker_pids')};"
            f" after the stop {run.get('sessions_after_stop')};"
            f" client errors {len(run.get('client_errors', []))}; gunicorn exit {run.get('gunicorn_exit')}",
            f"   verdict: {'PASS' if v['ok'] else 'FAIL'} {v['checks']}",
        ]
    return "\n".join(lines)


def chart(run: dict[str, Any], directory: Path) -> Path:
    """Draw RSS per worker and sessions over time into ``directory/soak-<config>.png``."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    samples = run["samples"]
    times = [s["t"] for s in samples]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
    for i, pid in enumerate(sorted({pid for s in samples for pid in s["rss_mb"]})):
        points = [(s["t"], s["rss_mb"][pid]) for s in samples if pid in s["rss_mb"]]
        top.plot(*zip(*points, strict=True), label=f"gunicorn worker {i + 1}")
    top.set_ylabel("RSS (MB)")
    top.legend(loc="lower right")
    top.set_title(f"Soak, {run['config']}: {run['tasks']:,} tasks, gunicorn -w 2 --threads 4")
    middle.plot(times, [s["sessions"] for s in samples], color="#762a83")
    middle.set_ylabel("open handles on the db" if run.get("vendor") == "sqlite" else "db sessions")
    middle.set_ylim(bottom=0)
    bottom.plot(times, [s["finished"] for s in samples], label="finished", color="#1b7837")
    bottom.plot(times, [s["enqueued"] for s in samples], label="enqueued", color="#999999")
    bottom.set_ylabel("tasks")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="lower right")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"soak-{run['config']}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        try:
            result = child(json.loads(sys.argv[2]))
        except Exception as exc:
            import traceback

            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write("\n" + json.dumps(result) + "\n")
        sys.exit(0 if "error" not in result else 2)
    sys.exit(main(sys.argv[1:]))
