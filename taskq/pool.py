"""A bounded pool of threads: N that run tasks, and a dispatcher that claims for idle ones and keeps house."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.db import DatabaseError, close_old_connections, connections, router
from django.utils import timezone

from taskq.conf import settings
from taskq.models import Status, Task, Worker, claims_in_one_statement
from taskq.schedule import Scheduler
from taskq.worker import record_timeout, run_task

logger = logging.getLogger("taskq")

# Every started pool of this process, so a commit wakes them all: the process's own, and
# one that taskq_worker or a test started by hand.
_live: weakref.WeakSet[Pool] = weakref.WeakSet()

# Dispatcher back-off after a database error, doubling up to the ceiling.
ERROR_BACKOFF_MIN = 0.5
ERROR_BACKOFF_MAX = 30.0
# A pool that finds taskq's tables missing says so once, then again only after this long.
TABLES_MISSING_REPEAT = 600.0
PRUNE_BATCH = 500
PRUNE_BATCHES_PER_ROUND = 20


def _runner_may_claim() -> bool:
    """True if a runner may claim its own next task on this thread's connection."""
    conn = connections[router.db_for_write(Task)]
    if not claims_in_one_statement(conn):
        # MariaDB's locking claim holds a row lock on every row it scans until it commits.
        # Eight runners doing that at once behind many delayed tasks filled InnoDB's lock
        # heap until the server aborted; there the dispatcher stays the only claimer.
        return False
    # A job that left autocommit off, or an atomic block open, would make a claim part of
    # its transaction, which the cleanup after the job then rolls back.
    try:
        return conn.connection is None or (not conn.in_atomic_block and conn.get_autocommit())
    except Exception:  # noqa: BLE001 - any failure here just means: do not claim on it
        return False  # the cleanup after the job deals with a connection in that state


def missing_tables() -> list[str]:
    """Taskq's tables that the database lacks; empty when all exist or the database cannot say."""
    conn = connections[router.db_for_write(Task)]
    try:
        present = set(conn.introspection.table_names())
    except Exception:  # noqa: BLE001 - the database is unreachable: the caller reports the first error
        return []
    return [t for t in (Task._meta.db_table, Worker._meta.db_table) if t not in present]


def wake_all() -> None:
    """Wake every live pool in this process: a task was just committed."""
    for pool in list(_live):
        pool.notify()


@dataclass(eq=False)
class _Running:
    task: Task
    thread: threading.Thread
    deadline: float | None
    cancel: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False


class Pool:
    """Claims due tasks from the database and runs them on a fixed number of threads."""

    def __init__(
        self,
        workers: int | None = None,
        queues: Sequence[str] | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.size = workers if workers is not None else settings.workers
        self.queues = list(queues) if queues is not None else settings.queues
        self.poll_interval = poll_interval if poll_interval is not None else settings.poll_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._running: dict[int, _Running] = {}
        self._runners: set[threading.Thread] = set()
        self._abandoned: set[threading.Thread] = set()
        self._busy = 0  # claimed and not yet finished: in the inbox or running
        self._backlog = False  # due tasks may be waiting: the last claim took all it asked for
        self._notified = False  # a task was committed since the dispatcher last looked
        self._capacity = 0  # live runner threads that have not been abandoned
        self._dispatcher: threading.Thread | None = None
        # Held while the dispatcher talks to the database, so a fork can wait for it to
        # finish: a child must never inherit a driver lock taken mid-call.
        self._talking = threading.Lock()
        self._last_prune: float | None = None  # monotonic time of the last prune; None: never
        # Monotonic time the missing tables were last reported; None while they exist.
        self._missing_reported: float | None = None
        self._scheduler: Scheduler | None = None

    # Lifecycle -------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the dispatcher thread runs."""
        return self._dispatcher is not None and self._dispatcher.is_alive()

    def start(self) -> Pool:
        """Start the dispatcher and the runner threads; they wait for the app registry."""
        if self._dispatcher is not None:
            return self
        with self._lock:
            for _ in range(self.size):
                self._spawn_runner()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"taskq-dispatcher-{self.name}", daemon=True
        )
        self._dispatcher.start()
        # Its own thread, so a tick never waits for a free runner.
        self._scheduler = Scheduler(self.name, self.notify, self._talking).start()
        _live.add(self)
        logger.info("pool=%s event=started workers=%s queues=%s", self.name, self.size, self.queues)
        return self

    def notify(self) -> None:
        """Wake the dispatcher so it claims at once rather than at the next poll."""
        self._notified = True
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop gracefully: give back unstarted tasks, let running ones finish within the grace."""
        if self._dispatcher is None:
            return True
        self._stopping.set()
        self._wake.set()
        grace = settings.shutdown_grace if timeout is None else timeout
        self._dispatcher.join(grace + 5.0)
        return self._stopped.is_set()

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def running_tasks(self) -> list[int]:
        """Primary keys of the tasks this pool is running now."""
        with self._lock:
            return [pk for pk, r in self._running.items() if not r.abandoned]

    @property
    def busy(self) -> int:
        """How many claimed tasks are waiting for a thread or running."""
        with self._lock:
            return self._busy

    @property
    def abandoned_threads(self) -> int:
        """How many timed-out threads have not returned yet."""
        with self._lock:
            return len(self._abandoned)

    # Runner threads --------------------------------------------------------

    def _spawn_runner(self) -> None:
        # Called with the lock held.
        thread = threading.Thread(target=self._run, name=f"taskq-worker-{self.name}", daemon=True)
        self._runners.add(thread)
        self._capacity += 1
        thread.start()

    def _run(self) -> None:
        me = threading.current_thread()
        task: Task | None = None
        try:
            while True:
                if task is None:
                    task = self._inbox.get()
                    if task is None:
                        return
                if self._stopping.is_set():
                    self._give_back([task])
                    return
                alive, task = self._run_one(task, me)
                if not alive:
                    return  # abandoned after a timeout: the pool has replaced this thread
        except BaseException as exc:
            # A task raised SystemExit or KeyboardInterrupt: run_task recorded it and let it
            # through, so this thread ends as its raiser asked. Its slot must not end with it.
            logger.error("pool=%s event=thread_exited error=%s: replacing it", self.name, type(exc).__name__)
            with self._lock:
                if me not in self._abandoned:
                    self._capacity -= 1
            raise
        finally:
            # Every thread closes what it opened, so no session outlives the pool.
            connections.close_all()
            with self._lock:
                self._runners.discard(me)
                self._abandoned.discard(me)
                # A thread that timed out past the cap, or that a task's SystemExit ended,
                # left its slot empty: fill it, never beyond the pool's size.
                if self._capacity < self.size and not self._stopping.is_set():
                    self._spawn_runner()
                    self._wake.set()
                    logger.warning("pool=%s event=capacity_restored capacity=%s", self.name, self._capacity)

    def _run_one(self, task: Task, me: threading.Thread) -> tuple[bool, Task | None]:
        """Run ``task``; return whether this thread lives on, and the task it claimed next."""
        deadline = time.monotonic() + task.timeout if task.timeout else None
        entry = _Running(task, me, deadline)
        with self._lock:
            self._running[task.pk] = entry
        if deadline is not None:
            self._wake.set()  # the dispatcher's wait must end by this deadline
        self._tidy_connections()
        completed = False
        following: Task | None = None
        try:
            run_task(task, entry.cancel)
            completed = True
        except Exception:
            # run_task records task errors itself; this is the database failing while
            # it did so. The lease will lapse and recovery will requeue the task.
            logger.exception("task=%s event=record_failed", task.pk)
        finally:
            # Read outside the lock: it asks the connection, which a blocked test can refuse.
            clean = completed and self._backlog and _runner_may_claim()
            with self._lock:
                # An abandoned attempt can return after the pool claimed the same task
                # again; the entry under its pk is then the new attempt's, not ours.
                if self._running.get(task.pk) is entry:
                    del self._running[task.pk]
                # While tasks are waiting, a thread that is free again claims its own next
                # one, its slot still counted busy so the dispatcher cannot claim for it as
                # well: back-to-back tasks skip the hand-off through the dispatcher. With
                # no backlog it just frees the slot, so a quiet queue costs no extra query.
                keep_slot = clean and self._backlog and not entry.abandoned and not self._stopping.is_set()
                # A slot freed while work may be due (a backlog, or this task's own
                # retry) must not wait for the next poll to be filled.
                wake = (
                    not entry.abandoned and not keep_slot and (self._backlog or task.status == Status.QUEUED)
                )
                if not entry.abandoned and not keep_slot:
                    self._busy -= 1
            if keep_slot:
                following = self._claim_next()
            elif wake:
                self._wake.set()
            # After the claim, so the job's connection serves the claim too, and
            # CONN_MAX_AGE=0 still closes it before the next job.
            self._tidy_connections()
        return not entry.abandoned, following

    def _claim_next(self) -> Task | None:
        """Claim one task for this thread, which is about to be free; None if none is due."""
        claimed: list[Task] = []
        try:
            claimed = Task.objects.claim(self.name, 1, settings.lease_seconds, self.queues)
        except Exception:
            # The dispatcher retries with back-off; this thread just goes back to waiting.
            logger.exception("pool=%s event=claim_failed", self.name)
        with self._lock:
            self._backlog = bool(claimed)
            if not claimed:
                self._busy -= 1
        if claimed:
            return claimed[0]
        # A task committed during this claim found every thread busy, so the dispatcher
        # left it to us; the slot is free now, and the dispatcher must look again.
        self._wake.set()
        return None

    def _give_back(self, tasks: list[Task]) -> None:
        try:
            Task.objects.release(self.name, [t.pk for t in tasks])
        except Exception:
            logger.exception("pool=%s event=release_failed tasks=%s", self.name, len(tasks))
        finally:
            self._tidy_connections()
            with self._lock:
                self._busy -= len(tasks)

    def _tidy_connections(self) -> None:
        """Close this thread's expired or broken connections, never letting a failure end the thread."""
        try:
            close_old_connections()
        except Exception:
            # Closing a connection the server already dropped can raise; the next query
            # reconnects anyway, so log it and carry on rather than lose the thread.
            logger.exception("pool=%s event=close_failed", self.name)

    # Dispatcher ------------------------------------------------------------

    def _dispatch(self) -> None:
        apps.ready_event.wait()
        next_housekeeping = 0.0
        error_backoff = ERROR_BACKOFF_MIN
        try:
            polled = True
            while not self._stopping.is_set():
                self._wake.clear()
                # Only a commit or a poll hints at waiting tasks; a wake for a new deadline
                # or a freed slot does not, so it must not start a round of empty claims.
                hinted, self._notified = self._notified or polled, False
                full = failed = False
                with self._talking:
                    try:
                        if time.monotonic() >= next_housekeeping:
                            self._housekeep()
                            next_housekeeping = time.monotonic() + settings.heartbeat_interval
                        self._expire_timeouts()
                        full = self._claim(hinted)
                        error_backoff = ERROR_BACKOFF_MIN
                        if self._missing_reported is not None:
                            self._missing_reported = None
                            logger.info("pool=%s event=tables_found: taskq's tables exist now", self.name)
                    except Exception as exc:  # noqa: BLE001 - a failed round backs off, never ends the pool
                        self._report_error(exc, error_backoff)
                        failed = True
                    finally:
                        self._tidy_connections()
                if failed:
                    self._stopping.wait(error_backoff)
                    error_backoff = min(error_backoff * 2, ERROR_BACKOFF_MAX)
                    polled = True
                elif full:
                    polled = False
                else:
                    polled = not self._wake.wait(self._next_wait(next_housekeeping))
        finally:
            self._shutdown()

    def _report_error(self, exc: Exception, backoff: float) -> None:
        """Log a failed round: missing tables once, in words; anything else with its traceback."""
        # Only after an error, so a healthy pool never pays for the introspection query.
        missing = missing_tables() if isinstance(exc, DatabaseError) else []
        if not missing:
            self._missing_reported = None
            logger.error("pool=%s event=dispatch_error backoff=%.1f", self.name, backoff, exc_info=exc)
            return
        now = time.monotonic()
        if self._missing_reported is not None and now - self._missing_reported < TABLES_MISSING_REPEAT:
            logger.debug("pool=%s event=tables_still_missing backoff=%.1f", self.name, backoff)
            return
        self._missing_reported = now
        # Every process of a site that was deployed before its migrations ran hits this on
        # every round; a traceback each time would bury the one thing to do.
        logger.error(
            "pool=%s event=tables_missing database=%s tables=%s: taskq's tables do not exist; "
            "run manage.py migrate. The pool checks again every %.0f s at most and starts by itself.",
            self.name,
            router.db_for_write(Task),
            ",".join(missing),
            ERROR_BACKOFF_MAX,
        )

    def hold_for_fork(self, timeout: float = 5.0) -> bool:
        """Wait until the dispatcher is between database calls and keep it there; True if held."""
        return self._talking.acquire(timeout=timeout)

    def release_after_fork(self) -> None:
        """Let the dispatcher talk to the database again after hold_for_fork()."""
        self._talking.release()

    def _claim(self, hinted: bool) -> bool:
        """Claim as many due tasks as there are free threads; True if every slot was filled."""
        with self._lock:
            free = self._capacity - self._busy
            if free <= 0:
                # Told of a commit, or polled, with every thread busy: tasks may be
                # waiting, so the next thread to finish claims one for itself.
                self._backlog = self._backlog or hinted
                return False
        tasks = Task.objects.claim(self.name, free, settings.lease_seconds, self.queues)
        with self._lock:
            self._busy += len(tasks)
            self._backlog = len(tasks) == free  # a full batch may have left more behind
        for task in tasks:
            self._inbox.put(task)
        return len(tasks) == free

    def _next_wait(self, next_housekeeping: float) -> float:
        now = time.monotonic()
        wait = min(self.poll_interval, max(next_housekeeping - now, 0.0))
        with self._lock:
            deadlines = [r.deadline for r in self._running.values() if r.deadline and not r.abandoned]
        if deadlines:
            wait = min(wait, max(min(deadlines) - now, 0.0))
        return wait

    def _expire_timeouts(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [
                r
                for r in self._running.values()
                if r.deadline is not None and r.deadline <= now and not r.abandoned
            ]
            for entry in late:
                entry.abandoned = True
                self._busy -= 1
                self._capacity -= 1
                self._abandoned.add(entry.thread)
                if len(self._abandoned) <= settings.max_abandoned_threads:
                    self._spawn_runner()
                else:
                    logger.error(
                        "pool=%s event=capacity_lost abandoned=%s capacity=%s: hung tasks hold "
                        "threads; give their network calls timeouts",
                        self.name,
                        len(self._abandoned),
                        self._capacity,
                    )
        for entry in late:
            logger.error(
                "pool=%s task=%s path=%s event=timeout timeout=%s: thread abandoned",
                self.name,
                entry.task.pk,
                entry.task.path,
                entry.task.timeout,
            )
            record_timeout(entry.task)

    def _housekeep(self) -> None:
        """Heartbeat this pool, renew its leases, pick up cancel requests, recover the dead."""
        now = timezone.now()
        with self._lock:
            running = {pk: r for pk, r in self._running.items() if not r.abandoned}
        beat = {"last_heartbeat": now, "threads": self._capacity}
        if not Worker.objects.filter(name=self.name).update(**beat):
            host, pid, _ = self.name.split(":")
            Worker.objects.create(name=self.name, hostname=host, pid=int(pid), queues=self.queues, **beat)
        if running:
            Task.objects.renew_leases(self.name, list(running), settings.lease_seconds)
            for pk in Task.objects.filter(pk__in=list(running), cancel_requested=True).values_list(
                "pk", flat=True
            ):
                running[pk].cancel.set()
        recovered = Task.objects.recover_expired()
        if recovered:
            logger.warning("pool=%s event=recovered tasks=%s reason=worker_lost", self.name, recovered)
        Worker.objects.filter(last_heartbeat__lt=now - timedelta(seconds=settings.lease_seconds)).delete()
        self._prune()

    def _prune(self) -> None:
        retention = settings.retention
        if retention is None:
            return
        # monotonic() counts from boot, so a start value of 0.0 would skip the first
        # prune for up to an interval on a freshly booted host; None means "never pruned".
        if self._last_prune is not None and time.monotonic() - self._last_prune < settings.prune_interval:
            return
        self._last_prune = time.monotonic()
        cutoff = timezone.now() - timedelta(seconds=retention)
        for _ in range(PRUNE_BATCHES_PER_ROUND):
            if Task.objects.prune(cutoff, PRUNE_BATCH) < PRUNE_BATCH:
                break

    def _shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
        unstarted: list[Task] = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unstarted.append(item)
        if unstarted:
            self._give_back(unstarted)
        with self._lock:
            runners = [t for t in self._runners if t not in self._abandoned]
        for _ in runners:
            self._inbox.put(None)
        deadline = time.monotonic() + settings.shutdown_grace
        for thread in runners:
            thread.join(max(deadline - time.monotonic(), 0.0))
        still = [t.name for t in runners if t.is_alive()]
        if still:
            logger.warning(
                "pool=%s event=stop_timeout running=%s: their leases will lapse and another "
                "pool will run them again",
                self.name,
                len(still),
            )
        try:
            if self._missing_reported is None:  # without its table, the pool never registered
                Worker.objects.filter(name=self.name).delete()
        except Exception:
            logger.exception("pool=%s event=unregister_failed", self.name)
        finally:
            connections.close_all()
            _live.discard(self)
            self._stopped.set()
            logger.info("pool=%s event=stopped", self.name)
