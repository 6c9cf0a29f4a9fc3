"""A bounded pool of threads: N that run tasks, and a dispatcher that claims for idle ones and keeps house."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

from django.apps import apps
from django.db import DatabaseError, connections, router
from django.utils import timezone

from taskq import schedule, wake
from taskq.conf import settings
from taskq.listen import Listener, Wake, serving_worker
from taskq.models import Task, Worker
from taskq.rollup import roll_up
from taskq.runners import Runners, tidy_connections
from taskq.schedule import Scheduler

logger = logging.getLogger("taskq")

# Dispatcher back-off after a database error, doubling up to the ceiling.
ERROR_BACKOFF_MIN = 0.5
ERROR_BACKOFF_MAX = 30.0
# A pool that finds taskq's tables missing says so once, then again only after this long.
TABLES_MISSING_REPEAT = 600.0
PRUNE_BATCH = 500
PRUNE_BATCHES_PER_ROUND = 20


def missing_tables() -> list[str]:
    """Taskq's tables that the database lacks; empty when all exist or the database cannot say."""
    conn = connections[router.db_for_write(Task)]
    try:
        present = set(conn.introspection.table_names())
    except Exception:  # noqa: BLE001 - the database is unreachable: the caller reports the first error
        return []
    return [t for t in (Task._meta.db_table, Worker._meta.db_table) if t not in present]


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
        self._wake = Wake()
        self.runners = Runners(self.name, self.size, self.queues, self._wake.set, self._stopping)
        self._notified = False  # a task was committed since the dispatcher last looked
        self._dispatcher: threading.Thread | None = None
        # Held while the dispatcher talks to the database, so a fork can wait for it to
        # finish: a child must never inherit a driver lock taken mid-call.
        self._talking = threading.Lock()
        self._last_prune: float | None = None  # monotonic time of the last prune; None: never
        # Monotonic time the missing tables were last reported; None while they exist.
        self._missing_reported: float | None = None
        self._scheduler: Scheduler | None = None
        self._listener: Listener | None = None
        self._claimed = 0  # rows claimed since the dispatcher last waited
        self._seen_busy = 0  # runners.busy when the dispatcher last waited

    # Lifecycle -------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the dispatcher thread runs."""
        return self._dispatcher is not None and self._dispatcher.is_alive()

    def start(self) -> Pool:
        """Start the dispatcher and the runner threads; they wait for the app registry."""
        if self._dispatcher is not None:
            return self
        self.runners.start()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"taskq-dispatcher-{self.name}", daemon=True
        )
        self._dispatcher.start()
        # Its own thread, so a tick never waits for a free runner.
        self._scheduler = Scheduler(self.name, self.notify, self._talking).start()
        wake.register(self)
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
        return list(self.runners.live())

    @property
    def busy(self) -> int:
        """How many claimed tasks are waiting for a thread or running."""
        return self.runners.busy + len(self.runners.ahead)

    @property
    def abandoned_threads(self) -> int:
        """How many timed-out threads have not returned yet."""
        return len(self.runners.abandoned)

    # Dispatcher ------------------------------------------------------------

    def _dispatch(self) -> None:
        apps.ready_event.wait()
        self._listener = Listener(
            self.name, self._wake, self.notify, self._talking, serving_worker(), self.poll_interval
        )
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
                        self.runners.expire_timeouts()
                        full = self._claim(hinted)
                        error_backoff = ERROR_BACKOFF_MIN
                        if self._missing_reported is not None:
                            self._missing_reported = None
                            logger.info("pool=%s event=tables_found: taskq's tables exist now", self.name)
                    except Exception as exc:  # noqa: BLE001 - a failed round backs off, never ends the pool
                        self._report_error(exc, error_backoff)
                        failed = True
                    finally:
                        tidy_connections(self.name)
                if failed:
                    self._stopping.wait(error_backoff)
                    error_backoff = min(error_backoff * 2, ERROR_BACKOFF_MAX)
                    polled = True
                elif full:
                    polled = False
                else:
                    wait = self._next_wait(next_housekeeping)
                    polled = not self._listener.wait(wait, found=self._active())
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
        """Claim as many due tasks as there are free runners; True if every slot was filled."""
        free = self.runners.free(hinted)
        if free <= 0:
            return False
        tasks = Task.objects.claim(self.name, free, settings.lease_seconds, self.queues)
        self._claimed += len(tasks)
        self.runners.hand(tasks, free)
        return len(tasks) == free

    def _active(self) -> bool:
        """True if tasks came or went since the last wait: claimed here, or finished by a runner."""
        busy = self.runners.busy
        active = self._claimed > 0 or busy != self._seen_busy
        self._claimed, self._seen_busy = 0, busy
        return active

    def _next_wait(self, next_housekeeping: float) -> float:
        now = time.monotonic()
        wait = min(self.poll_interval, max(next_housekeeping - now, 0.0))
        deadline = self.runners.next_deadline()
        if deadline is not None:
            wait = min(wait, max(deadline - now, 0.0))
        return wait

    def _housekeep(self) -> None:
        """Heartbeat this pool, renew its leases, pick up cancel requests, recover the dead."""
        now = timezone.now()
        running = self.runners.live()
        beat = {"last_heartbeat": now, "threads": self.runners.capacity}
        if not Worker.objects.filter(name=self.name).update(**beat):
            host, pid, _ = self.name.split(":")
            Worker.objects.create(name=self.name, hostname=host, pid=int(pid), queues=self.queues, **beat)
        held = [*running, *self.runners.waiting_ahead()]
        if held:
            # Rows claimed ahead hold leases too, however long the tasks before them run.
            Task.objects.renew_leases(self.name, held, settings.lease_seconds)
            asked = Task.objects.filter(pk__in=held, cancel_requested=True).values_list("pk", flat=True)
            unstarted: list[int] = []
            for pk in asked:
                if pk in running:
                    running[pk].cancel.set()
                else:
                    unstarted.append(pk)
            if unstarted:
                self.runners.cancel_ahead(unstarted)
        recovered = Task.objects.recover_expired()
        if recovered:
            logger.warning("pool=%s event=recovered tasks=%s reason=worker_lost", self.name, recovered)
        Worker.objects.filter(last_heartbeat__lt=now - timedelta(seconds=settings.lease_seconds)).delete()
        # The extras below must never stop a pool from claiming: a failure is logged, and the
        # round goes on (a site deployed before its rollup table exists still runs tasks).
        for name, extra in (("rollup", lambda: roll_up(now)), ("prune", self._prune)):
            try:
                extra()
            except Exception as exc:  # noqa: BLE001 - logged; the heartbeat and claims go on
                logger.warning("pool=%s event=%s_failed error=%r", self.name, name, exc)

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
        # Each schedule's newest firing is where it resumes after a restart: never prune it.
        keep = schedule.newest_firings()
        for _ in range(PRUNE_BATCHES_PER_ROUND):
            if Task.objects.prune(cutoff, PRUNE_BATCH, keep=keep) < PRUNE_BATCH:
                break

    def _shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
        still = self.runners.stop(settings.shutdown_grace)
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
            if self._listener is not None:
                self._listener.close()
            try:
                connections.close_all()
            except Exception:  # closing a connection the server dropped can raise
                logger.exception("pool=%s event=close_failed", self.name)
            wake.unregister(self)
            self._stopped.set()
            logger.info("pool=%s event=stopped", self.name)
