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


class DbWorker(System):
    """Django's Tasks API with django-tasks-db: enqueue() inserts, N db_worker processes run tasks."""

    name = "db-worker"
    durable = True

    def __init__(self, processes: int, interval: float, log_dir: Path) -> None:
        self.processes = processes
        self.interval = interval
        self.log_dir = log_dir
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "django", "db_worker", "--no-reload", "--no-startup-delay"]
        command += ["--interval", str(self.interval), "--verbosity", "1"]
        for i in range(self.processes):
            log = self.log_dir / f"db_worker-{os.getpid()}-{i}.log"
            with log.open("wb") as out:
                self.workers.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
            self.logs.append(log)
        deadline = time.monotonic() + 120
        while not all("Starting worker" in log.read_text(errors="replace") for log in self.logs):
            if time.monotonic() > deadline or any(w.poll() is not None for w in self.workers):
                raise RuntimeError(f"db_worker did not start; see {self.log_dir}")
            time.sleep(0.1)

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import dt_tasks

        dt_tasks.write.enqueue(n, t_enq, wait)

    def stop(self) -> None:
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.wait(60)
        for log in self.logs:
            log.unlink(missing_ok=True)

    def helper_pids(self) -> list[int]:
        return [w.pid for w in self.workers]


class Huey(System):
    """huey (djhuey, RedisHuey): enqueue pushes to Redis; one run_huey consumer of 8 threads runs tasks."""

    name = "huey"
    durable = True  # in Redis, huey's canonical broker, not in the web process

    def __init__(self, workers: int, log_dir: Path) -> None:
        self.workers = workers
        self.log_dir = log_dir
        self.consumer: subprocess.Popen[bytes] | None = None
        self.log = log_dir / f"run_huey-{os.getpid()}.log"

    def start(self) -> None:
        from huey.contrib.djhuey import HUEY  # type: ignore[import-not-found, unused-ignore]

        # Every run starts from an empty queue: the settings give huey a Redis db of its own.
        HUEY.storage.conn.flushdb()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # BENCH_HUEY=1 puts huey.contrib.djhuey (and so run_huey) in INSTALLED_APPS.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_HUEY": "1"}
        command = [sys.executable, "-m", "django", "run_huey", "--workers", str(self.workers)]
        command += ["--worker-type", "thread", "--no-periodic"]
        with self.log.open("wb") as out:
            self.consumer = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "Huey consumer started" not in self.log.read_text(errors="replace"):
            if time.monotonic() > deadline or self.consumer.poll() is not None:
                raise RuntimeError(f"run_huey did not start; see {self.log}")
            time.sleep(0.1)

    def submit(self, n: int, t_enq: float, wait: float) -> None:
        from bench import huey_tasks

        huey_tasks.write(n, t_enq, wait)

    def stop(self) -> None:
        assert self.consumer is not None
        # SIGINT is huey's graceful stop: the workers finish their task, then exit.
        self.consumer.send_signal(signal.SIGINT)
        self.consumer.wait(60)
        self.log.unlink(missing_ok=True)

    def helper_pids(self) -> list[int]:
        return [self.consumer.pid] if self.consumer else []


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
    if name == "huey":
        return Huey(THREADS, Path(options["log_dir"]))
    raise ValueError(f"unknown system {name!r}; choose from {sorted([*simple, 'db-worker', 'huey'])}")
