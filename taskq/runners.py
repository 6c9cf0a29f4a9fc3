"""A pool's runners: the threads that run claimed tasks, and the slots they fill.

The invariant: ``busy`` (tasks claimed and not yet finished, whether waiting in the inbox
or running) never exceeds ``capacity`` (live runner threads not abandoned to a timeout).
The dispatcher claims at most ``free()`` rows and only it adds to ``busy``; a runner that
finishes either gives its slot back or, while a backlog is likely, keeps the slot and
takes its next task for itself.

That next task comes from the rows claimed ahead, if any are left, or else from a claim of
one row plus up to ``TASKQ_CLAIM_AHEAD`` more. The extra rows wait in ``ahead``, outside
``busy``, for the next thread to finish: one claim statement then feeds several tasks while
the backlog lasts. Until they start, the pool renews their leases and passes on cancel
requests, and when it stops it gives them back, as it does the rows waiting in the inbox.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import close_old_connections, connections, router

from taskq.attempt import record_cancelled_unstarted, record_timeout, run_task
from taskq.conf import settings
from taskq.features import features
from taskq.models import Status, Task

logger = logging.getLogger("taskq")


@dataclass(eq=False)
class Running:
    """A task on a runner thread, with its deadline and the event that asks it to stop."""

    task: Task
    thread: threading.Thread
    deadline: float | None
    cancel: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False


def runner_may_claim() -> bool:
    """True if a runner may claim its own next task on this thread's connection."""
    conn = connections[router.db_for_write(Task)]
    if not features(conn).runners_claim:
        return False
    # A job that left autocommit off, or an atomic block open, would make a claim part of
    # its transaction, which the cleanup after the job then rolls back.
    try:
        return conn.connection is None or (not conn.in_atomic_block and conn.get_autocommit())
    except Exception:  # noqa: BLE001 - any failure here just means: do not claim on it
        return False  # the cleanup after the job deals with a connection in that state


def tidy_connections(pool: str) -> None:
    """Close this thread's expired or broken connections, never letting a failure end the thread."""
    try:
        close_old_connections()
    except Exception:
        # Closing a connection the server already dropped can raise; the next query
        # reconnects anyway, so log it and carry on rather than lose the thread.
        logger.exception("pool=%s event=close_failed", pool)


class Runners:
    """A fixed number of runner threads fed through an inbox, and the count of their slots."""

    def __init__(
        self,
        pool: str,
        size: int,
        queues: Sequence[str] | None,
        wake: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        self.pool = pool
        self.size = size
        self.queues = queues
        self._wake = wake  # ends the dispatcher's wait
        self._stopping = stopping
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self.running: dict[int, Running] = {}
        self.threads: set[threading.Thread] = set()
        self.abandoned: set[threading.Thread] = set()
        self.busy = 0  # claimed and not yet finished: in the inbox or running
        # Claimed by a runner beyond its own next task, waiting for the next thread to finish.
        self.ahead: deque[Task] = deque()
        self.capacity = 0  # live runner threads that have not been abandoned
        # Due tasks may be waiting: a runner's last claim found rows, or the dispatcher's a full batch.
        self.backlog = False

    # For the dispatcher ----------------------------------------------------

    def start(self) -> None:
        """Start ``size`` runner threads."""
        with self._lock:
            for _ in range(self.size):
                self._spawn()

    def free(self, hinted: bool) -> int:
        """Slots the dispatcher may claim for; with none, note that work may be waiting."""
        with self._lock:
            # Rows already claimed ahead fill free slots before any new claim does.
            while self.ahead and self.busy < self.capacity:
                self.busy += 1
                self._inbox.put(self.ahead.popleft())
            free = self.capacity - self.busy
            if free <= 0:
                # Told of a commit, or polled, with every thread busy: tasks may be
                # waiting, so the next thread to finish claims one for itself.
                self.backlog = self.backlog or hinted
            return free

    def hand(self, tasks: list[Task], asked: int) -> None:
        """Give claimed ``tasks`` (from a claim of ``asked`` rows) to the runners."""
        with self._lock:
            self.busy += len(tasks)
            self.backlog = len(tasks) == asked  # a full batch may have left more behind
        for task in tasks:
            self._inbox.put(task)

    def live(self) -> dict[int, Running]:
        """The tasks running now, by primary key, leaving out abandoned attempts."""
        with self._lock:
            return {pk: r for pk, r in self.running.items() if not r.abandoned}

    def waiting_ahead(self) -> list[int]:
        """Primary keys of the rows claimed ahead that no thread has started yet."""
        with self._lock:
            return [t.pk for t in self.ahead]

    def cancel_ahead(self, pks: Sequence[int]) -> None:
        """Record as cancelled the rows claimed ahead among ``pks`` that have not started."""
        wanted = set(pks)
        with self._lock:
            dropped = [t for t in self.ahead if t.pk in wanted]
            for task in dropped:
                self.ahead.remove(task)
        for task in dropped:
            try:
                record_cancelled_unstarted(task)
            except Exception:
                logger.exception("pool=%s task=%s event=record_failed", self.pool, task.pk)

    def next_deadline(self) -> float | None:
        """The monotonic time the soonest running task times out, if any has a timeout."""
        with self._lock:
            deadlines = [r.deadline for r in self.running.values() if r.deadline and not r.abandoned]
        return min(deadlines) if deadlines else None

    def expire_timeouts(self) -> None:
        """Abandon the threads of tasks past their timeout, replace them, and record the timeouts."""
        now = time.monotonic()
        with self._lock:
            late = [
                r
                for r in self.running.values()
                if r.deadline is not None and r.deadline <= now and not r.abandoned
            ]
            for entry in late:
                entry.abandoned = True
                self.busy -= 1
                self.capacity -= 1
                self.abandoned.add(entry.thread)
                if len(self.abandoned) <= settings.max_abandoned_threads:
                    self._spawn()
                else:
                    logger.error(
                        "pool=%s event=capacity_lost abandoned=%s capacity=%s: hung tasks hold "
                        "threads; give their network calls timeouts",
                        self.pool,
                        len(self.abandoned),
                        self.capacity,
                    )
        for entry in late:
            logger.error(
                "pool=%s task=%s path=%s event=timeout timeout=%s: thread abandoned",
                self.pool,
                entry.task.pk,
                entry.task.path,
                entry.task.timeout,
            )
            try:
                record_timeout(entry.task)
            except Exception:
                # The database stayed away past the outcome's retries: this task's lease
                # lapses and recovery records it, and the other late tasks still get theirs.
                logger.exception("pool=%s task=%s event=record_failed", self.pool, entry.task.pk)

    def stop(self, grace: float) -> list[str]:
        """Give back unstarted tasks, let running ones finish within ``grace``; name those still running."""
        with self._lock:
            unstarted = list(self.ahead)
            self.ahead.clear()
        # Rows claimed ahead were never counted busy: give them back without uncounting them.
        if unstarted:
            self._give_back(unstarted, counted=False)
        unstarted = []
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
            threads = [t for t in self.threads if t not in self.abandoned]
        for _ in threads:
            self._inbox.put(None)
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return [t.name for t in threads if t.is_alive()]

    # The runner threads ----------------------------------------------------

    def _spawn(self) -> None:
        # Called with the lock held, which the new thread does not take before its first
        # task, so it is counted once it is known to have started.
        thread = threading.Thread(target=self._run, name=f"taskq-runner-{self.pool}", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            logger.exception("pool=%s event=spawn_failed capacity=%s", self.pool, self.capacity)
            return
        self.threads.add(thread)
        self.capacity += 1

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
            logger.error("pool=%s event=thread_exited error=%s: replacing it", self.pool, type(exc).__name__)
            with self._lock:
                if me not in self.abandoned:
                    self.capacity -= 1
            raise
        finally:
            # Every thread closes what it opened, so no session outlives the pool.
            try:
                connections.close_all()
            except Exception:  # closing a connection the server dropped can raise
                logger.exception("pool=%s event=close_failed", self.pool)
            with self._lock:
                self.threads.discard(me)
                self.abandoned.discard(me)
                # A thread that timed out past the cap, or that a task's SystemExit ended,
                # left its slot empty: fill it, never beyond the pool's size.
                if self.capacity < self.size and not self._stopping.is_set():
                    self._spawn()
                    self._wake()
                    logger.warning("pool=%s event=capacity_restored capacity=%s", self.pool, self.capacity)

    def _run_one(self, task: Task, me: threading.Thread) -> tuple[bool, Task | None]:
        """Run ``task``; return whether this thread lives on, and the task it claimed next."""
        deadline = time.monotonic() + task.timeout if task.timeout else None
        entry = Running(task, me, deadline)
        with self._lock:
            self.running[task.pk] = entry
        if deadline is not None:
            self._wake()  # the dispatcher's wait must end by this deadline
        tidy_connections(self.pool)
        completed = False
        following: Task | None = None
        try:
            run_task(task, entry.cancel)
            completed = True
        except Exception:
            # run_task retries its outcome write over a lost connection; this is the
            # database staying away past that. The lease will lapse and recovery requeue it.
            logger.exception("task=%s event=record_failed", task.pk)
        finally:
            # Read outside the lock: it asks the connection, which a blocked test can refuse.
            clean = completed and self.backlog and runner_may_claim()
            with self._lock:
                # An abandoned attempt can return after the pool claimed the same task
                # again; the entry under its pk is then the new attempt's, not ours.
                if self.running.get(task.pk) is entry:
                    del self.running[task.pk]
                usable = not entry.abandoned and not self._stopping.is_set()
                # A row claimed ahead needs no query and no connection: take it first.
                if usable and self.ahead:
                    following = self.ahead.popleft()
                # While tasks are waiting, a thread that is free again claims its own next
                # one, its slot still counted busy so the dispatcher cannot claim for it as
                # well: back-to-back tasks skip the hand-off through the dispatcher. With
                # no backlog it just frees the slot, so a quiet queue costs no extra query.
                claim = following is None and clean and self.backlog and usable
                keep_slot = claim or following is not None
                # A slot freed while work may be due (a backlog, or this task's own
                # retry) must not wait for the next poll to be filled.
                wake = (
                    not entry.abandoned and not keep_slot and (self.backlog or task.status == Status.QUEUED)
                )
                if not entry.abandoned and not keep_slot:
                    self.busy -= 1
            if claim:
                following = self._claim_next()
            elif wake:
                self._wake()
            # After the claim, so the job's connection serves the claim too, and
            # CONN_MAX_AGE=0 still closes it before the next job.
            tidy_connections(self.pool)
        return not entry.abandoned, following

    def _claim_next(self) -> Task | None:
        """Claim a task for this thread, which is about to be free, and the rows to claim ahead.

        Returns this thread's task, or None if none is due.
        """
        claimed: list[Task] = []
        asked = 1 + settings.claim_ahead
        try:
            claimed = Task.objects.claim(self.pool, asked, settings.lease_seconds, self.queues)
        except Exception:
            # The dispatcher retries with back-off; this thread just goes back to waiting.
            logger.exception("pool=%s event=claim_failed", self.pool)
        late: list[Task] = []
        with self._lock:
            # Any row found means more may be due: a claim that other processes' claims beat to
            # some rows (SKIP LOCKED) comes back short with work left, so a short batch does not
            # end the backlog. Only an empty claim does, at the cost of one empty claim at the end.
            self.backlog = bool(claimed)
            if not claimed:
                self.busy -= 1
            elif self._stopping.is_set():
                late = claimed[1:]  # stop() has emptied ``ahead`` already, or is about to
            else:
                self.ahead.extend(claimed[1:])
            # A slot another thread freed during the claim would leave these rows waiting
            # for the dispatcher's next round; wake it to move them into that slot now.
            idle = bool(self.ahead) and self.busy < self.capacity
        if late:
            self._give_back(late, counted=False)
        if idle:
            self._wake()
        if claimed:
            return claimed[0]
        # A task committed during this claim found every thread busy, so the dispatcher
        # left it to us; the slot is free now, and the dispatcher must look again.
        self._wake()
        return None

    def _give_back(self, tasks: list[Task], counted: bool = True) -> None:
        """Release claimed tasks that never started; ``counted`` if they hold slots in ``busy``."""
        try:
            Task.objects.release(self.pool, [t.pk for t in tasks])
        except Exception:
            logger.exception("pool=%s event=release_failed tasks=%s", self.pool, len(tasks))
        finally:
            tidy_connections(self.pool)
            if counted:
                with self._lock:
                    self.busy -= len(tasks)
