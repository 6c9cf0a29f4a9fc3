"""The systems under comparison, each behind the same four calls: start, submit, stop, helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

THREADS = 8
# A system that makes no progress for this long has failed (say, threads stuck waiting for
# a connection from an exhausted pool); give up rather than wait for the full timeout.
STALL_S = 30.0


class System:
    """How one approach runs ``tasks.write`` in the background."""

    name = ""
    durable = False  # does a queued task survive the process?
    cross_process = False  # do its tasks run in processes other than the enqueuing one?

    def start(self) -> None:
        """Get ready to run tasks (start threads or worker processes)."""

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        """Hand one task over, the way a view would."""
        raise NotImplementedError

    def stop(self) -> None:
        """Shut down the way the approach's docs (or the seed article) say to."""

    def helper_pids(self) -> list[int]:
        """Other processes that run this system's tasks, for their memory."""
        return []


class Baseline(System):
    """taskq's enqueue with no pool: the same web process doing the same INSERTs, running nothing."""

    name = "baseline"

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        import taskq
        from bench import tasks

        taskq.enqueue(tasks.write, n, t_enq, wait)


class Taskq(System):
    """taskq: enqueue() inserts a row; this process's pool of 8 threads claims and runs it."""

    name = "taskq"
    durable = True

    def start(self) -> None:
        from taskq import process

        process.start(workers=THREADS)

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        import taskq
        from bench import tasks

        taskq.enqueue(tasks.write, n, t_enq, wait)

    def stop(self) -> None:
        from taskq import process

        process.stop()


def _start_logged(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _await_logs(procs: list[subprocess.Popen[bytes]], logs: list[Path], marker: str, what: str) -> None:
    deadline = time.monotonic() + 120
    while not all(marker in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"{what} did not start; see {logs[0].parent}")
        time.sleep(0.05)


class HelperProcesses(System):
    """A system whose tasks run in helper processes it starts, each logging to a file of its own."""

    # The signal that asks a helper to finish its task and exit.
    stop_signal = signal.SIGTERM

    def __init__(self, log_dir: Path, processes: int) -> None:
        self.log_dir = log_dir
        self.processes = processes
        self.helpers: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def _start_helpers(self, command: list[str], what: str, marker: str, **env: str) -> None:
        """Start ``processes`` copies of ``command``; return once each has logged ``marker``."""
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        for i in range(self.processes):
            self.logs.append(self.log_dir / f"{what}-{os.getpid()}-{i}.log")
            self.helpers.append(_start_logged(command, self.logs[-1], environ))
        _await_logs(self.helpers, self.logs, marker, what)

    def stop(self) -> None:
        for helper in self.helpers:
            helper.send_signal(self.stop_signal)
        for helper in self.helpers:
            helper.wait(60)
        for log in self.logs:
            log.unlink(missing_ok=True)

    def helper_pids(self) -> list[int]:
        return [h.pid for h in self.helpers]


class TaskqWorker(HelperProcesses):
    """taskq across processes: this process enqueues with no pool; taskq_worker processes run the tasks."""

    name = "taskq-worker"
    durable = True
    cross_process = True

    def __init__(self, log_dir: Path, processes: int = 1, threads: int = THREADS) -> None:
        super().__init__(log_dir, processes)
        self.threads = threads

    def start(self) -> None:
        command = [sys.executable, "-m", "django", "taskq_worker", "--workers", str(self.threads)]
        self._start_helpers(command, "taskq_worker", "threads, queues=")

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        import taskq
        from bench import tasks

        taskq.enqueue(tasks.write, n, t_enq, wait)


class TaskqDjangoApi(Taskq):
    """taskq behind Django's Tasks API: @task(...).enqueue() through TaskqBackend, the same pool."""

    name = "dtasks-taskq"

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import dt_taskq_tasks

        dt_taskq_tasks.write.enqueue(n, t_enq, wait)


class ThreadPerTask(System):
    """A new thread per task (the seed blog post). At most 8 alive, to spare the shared server."""

    name = "thread"
    close = False

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import tasks

        if not tasks.SLOTS.acquire(timeout=STALL_S):
            raise TimeoutError(f"stalled: no thread finished in {STALL_S:g}s")
        if tasks.FAILURES:
            raise RuntimeError(f"tasks failed: {tasks.FAILURES[0]}")
        # Daemon, so a stalled run can still exit.
        thread = threading.Thread(
            target=tasks.write_in_thread, args=(n, t_enq, wait, self.close), name=f"bench-{n}", daemon=True
        )
        thread.start()
        if len(self.threads) > 64:
            self.threads = [t for t in self.threads if t.is_alive()]
        self.threads.append(thread)

    def stop(self) -> None:
        for thread in self.threads:
            thread.join()


class ThreadPerTaskClosing(ThreadPerTask):
    """The seed post's fix: the same, but each thread closes its connections at the end."""

    name = "thread-close"
    close = True


# A module-level executor, as the seed article has it; created on first use.
EXECUTOR: ThreadPoolExecutor | None = None


class Executor(System):
    """A module-level ThreadPoolExecutor(8) that nobody tells to close connections."""

    name = "executor"

    def start(self) -> None:
        global EXECUTOR
        EXECUTOR = ThreadPoolExecutor(THREADS, thread_name_prefix="bench-executor")

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import tasks

        assert EXECUTOR is not None
        EXECUTOR.submit(tasks.write, n, t_enq, wait)

    def stop(self) -> None:
        assert EXECUTOR is not None
        EXECUTOR.shutdown(wait=True)


class DbWorker(HelperProcesses):
    """Django's Tasks API with django-tasks-db: enqueue() inserts, N db_worker processes run tasks."""

    name = "db-worker"
    durable = True

    def __init__(self, processes: int, interval: float, log_dir: Path) -> None:
        super().__init__(log_dir, processes)
        self.interval = interval

    def start(self) -> None:
        command = [sys.executable, "-m", "django", "db_worker", "--no-reload", "--no-startup-delay"]
        command += ["--interval", str(self.interval), "--verbosity", "1"]
        self._start_helpers(command, "db_worker", "Starting worker")

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import dt_tasks

        dt_tasks.write.enqueue(n, t_enq, wait)


class Huey(HelperProcesses):
    """huey (djhuey): enqueue stores the task; run_huey consumers (one of 8 threads) run them.

    ``huey`` keeps its queue in Redis, its canonical broker; ``huey-db`` in the bench database
    itself (SqliteHuey, PostgresHuey), the like-for-like durable peer. huey has no MariaDB
    storage, so ``huey-db`` does not run there. bench/settings.py picks the storage from
    BENCH_HUEY_STORAGE, which bench/child.py sets before Django loads.
    """

    name = "huey"
    durable = True  # in Redis or the database, not in the web process
    cross_process = True

    # SIGINT is huey's graceful stop: the workers finish their task, then exit.
    stop_signal = signal.SIGINT

    def __init__(self, workers: int, log_dir: Path, processes: int = 1) -> None:
        super().__init__(log_dir, processes)
        self.workers = workers

    @staticmethod
    def flush() -> None:
        """Empty huey's queue, schedule and results, so every run starts from nothing."""
        from huey.contrib.djhuey import HUEY  # type: ignore[import-not-found, unused-ignore]

        HUEY.flush()

    def start(self) -> None:
        command = [sys.executable, "-m", "django", "run_huey", "--workers", str(self.workers)]
        command += ["--worker-type", "thread", "--no-periodic"]
        # BENCH_HUEY=1 puts huey.contrib.djhuey (and so run_huey) in INSTALLED_APPS.
        self._start_helpers(command, "run_huey", "Huey consumer started", BENCH_HUEY="1")

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import huey_tasks

        huey_tasks.write(n, t_enq, wait)


def make(name: str, options: dict[str, Any]) -> System:
    """Build the system called ``name``."""
    simple: dict[str, type[System]] = {
        "baseline": Baseline,
        "taskq": Taskq,
        "dtasks-taskq": TaskqDjangoApi,
        "thread": ThreadPerTask,
        "thread-close": ThreadPerTaskClosing,
        "executor": Executor,
    }
    if name in simple:
        return simple[name]()
    if name.startswith("taskq:"):
        # A variant: the same system, with another copy of taskq first on the path.
        variant = Taskq()
        variant.name = name
        return variant
    if name == "db-worker":
        return DbWorker(
            options.get("db_workers", THREADS),
            options.get("db_worker_interval", 1.0),
            Path(options["log_dir"]),
        )
    processes, threads = options.get("processes", 1), options.get("threads", THREADS)
    if name in ("huey", "huey-db"):
        huey = Huey(threads, Path(options["log_dir"]), processes)
        huey.name = name
        huey.flush()
        return huey
    if name == "taskq-worker":
        return TaskqWorker(Path(options["log_dir"]), processes, threads)
    others = ["db-worker", "huey", "huey-db", "taskq-worker"]
    raise ValueError(f"unknown system {name!r}; choose from {sorted([*simple, *others])}")
