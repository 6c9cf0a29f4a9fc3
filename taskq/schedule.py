"""Periodic tasks at run time: fire each entry's ticks once across every pool, and say when they ran."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import IntegrityError, close_old_connections, connections, router, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from taskq.enqueue import Options
from taskq.models import Task
from taskq.schedule_entries import LATE_GRACE, TICK_FORMAT, UID_PREFIX, Entry, entries
from taskq.signals import task_enqueued

logger = logging.getLogger("taskq")

ERROR_BACKOFF_MIN = 0.5
ERROR_BACKOFF_MAX = 30.0
MAX_WAIT = 60.0  # look again at least this often, so a stepped system clock is noticed
OVERDUE_GRACE = timedelta(minutes=1)


def fire(entry: Entry, tick: datetime, now: datetime) -> Task | None:
    """Insert ``entry``'s task for ``tick``; None if another pool already did."""
    options = Options(
        queue=entry.defaults.queue,
        priority=entry.defaults.priority,
        max_attempts=entry.defaults.max_attempts,
        timeout=entry.defaults.timeout,
        run_at=tick,
    )
    uid = entry.uid(tick)
    task = options.build(import_string(entry.path), tuple(entry.args), dict(entry.kwargs), uid=uid)
    # A firing is keyed by its tick: a unique key would make an overlapping run look like
    # a tick another pool already took.
    task.unique_key = None
    task.enqueued_at = now
    using = router.db_for_write(Task)
    try:
        # A transaction (or savepoint) of its own, so losing the uid to another pool
        # never breaks a surrounding transaction.
        with transaction.atomic(using=using):
            task.save(using=using, force_insert=True)
    except IntegrityError:
        if Task.objects.using(using).filter(uid=uid).exists():
            logger.debug("schedule=%s event=tick_taken tick=%s", entry.name, tick.isoformat())
            return None
        raise
    task_enqueued.send(sender=Task, task=task)
    return task


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def last_fired(entry: Entry, limit: int = 1) -> list[Task]:
    """The newest ``limit`` firing rows of ``entry``, newest first."""
    prefix = f"{UID_PREFIX}{entry.name}:"
    # A range on the unique uid index, which every backend walks backwards; a LIKE alone
    # could not use it on PostgreSQL without a pattern opclass. The startswith filter
    # only guards collations that sort punctuation loosely.
    return list(
        Task.objects.filter(uid__gte=prefix + "0", uid__lte=prefix + "9~", uid__startswith=prefix)
        .order_by("-uid")
        .only("uid", "status")[:limit]
    )


def newest_firings() -> list[int]:
    """The primary key of each schedule's newest firing row, which retention must keep."""
    try:
        declared = entries()
    except Exception:  # noqa: BLE001 - a broken schedule is the check's to report; prune the rest
        logger.warning("event=schedule_unreadable: pruning without keeping schedules' last firings")
        return []
    return [row.pk for entry in declared for row in last_fired(entry, 1)]


def tick_of(task: Task) -> datetime:
    """The tick a firing row stands for, read back from the end of its uid."""
    assert task.uid is not None
    return datetime.strptime(task.uid[-20:], TICK_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class ScheduleState:
    """What an operator needs to know about one schedule entry."""

    name: str
    task: str
    spec: str
    next_run: datetime | None
    last_run: datetime | None  # the tick of the newest firing
    last_task_id: int | None
    last_outcome: str | None  # that row's status
    skipped: int | None  # ticks missed before the newest firing; None: no earlier row to compare
    overdue: bool  # the tick after the newest firing is more than the grace late


def describe(now: datetime | None = None, grace: timedelta = OVERDUE_GRACE) -> list[ScheduleState]:
    """Return the state of every valid schedule entry at ``now``, two indexed reads per entry."""
    now = now or timezone.now()
    states = []
    for entry in entries():
        rows = last_fired(entry, 2)
        last = tick_of(rows[0]) if rows else None
        skipped = None
        if len(rows) == 2 and last is not None:
            skipped = max(entry.ticks_between(tick_of(rows[1]), last)[1] - 1, 0)
        expected = entry.next_after(last) if last is not None else None
        states.append(
            ScheduleState(
                name=entry.name,
                task=entry.path,
                spec=entry.spec,
                next_run=entry.next_after(now),
                last_run=last,
                last_task_id=rows[0].pk if rows else None,
                last_outcome=str(rows[0].status) if rows else None,
                skipped=skipped,
                overdue=expected is not None and now > expected + grace,
            )
        )
    return states


class Scheduler:
    """Fires due ticks on a thread of its own, so a pool whose runners are all busy still fires on time."""

    def __init__(
        self,
        pool_name: str,
        on_fired: Callable[[], None],
        talking: threading.Lock | None = None,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.pool_name = pool_name
        self._on_fired = on_fired
        # The pool's lock for database calls, so a fork never copies a driver lock held mid-call.
        self._talking = talking or threading.Lock()
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: dict[str, datetime | None] = {}  # each entry's next tick, once known
        # An entry whose firing failed (the database is away) waits this long before the
        # next try, doubling, so one bad entry never holds up the others.
        self._backoff: dict[str, float] = {}
        self._retry_at: dict[str, datetime] = {}

    def start(self) -> Scheduler:
        """Start the thread; it waits for the app registry, and ends at once if nothing is scheduled."""
        self._thread = threading.Thread(
            target=self._loop, name=f"taskq-scheduler-{self.pool_name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end and wait for it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not apps.ready_event.wait(0.1):
            if self._stop.is_set():
                return
        try:
            try:
                schedule = entries()
            except Exception:
                # An app's tasks module that fails to import: nothing can be scheduled.
                logger.exception("pool=%s event=scheduler_failed", self.pool_name)
                return
            if schedule:
                logger.info("pool=%s event=scheduler_started entries=%s", self.pool_name, len(schedule))
            while schedule and not self._stop.is_set():
                with self._talking:
                    try:
                        wait = self.run_due(schedule)
                    finally:
                        _tidy_connections(self.pool_name)
                self._stop.wait(wait)
        finally:
            # Like every pool thread, it closes what it opened.
            connections.close_all()

    def run_due(self, schedule: list[Entry], now: datetime | None = None) -> float:
        """Fire every entry whose tick has come; return the seconds until the next tick."""
        now = now or self._clock()
        fired = False
        for entry in schedule:
            retry_at = self._retry_at.get(entry.name)
            if retry_at is not None and now < retry_at:
                continue
            try:
                fired = self._run_entry(entry, now) or fired
            except Exception:
                backoff = self._backoff.get(entry.name, ERROR_BACKOFF_MIN)
                logger.exception(
                    "pool=%s schedule=%s event=schedule_error backoff=%.1f",
                    self.pool_name,
                    entry.name,
                    backoff,
                )
                self._retry_at[entry.name] = now + timedelta(seconds=backoff)
                self._backoff[entry.name] = min(backoff * 2, ERROR_BACKOFF_MAX)
            else:
                self._retry_at.pop(entry.name, None)
                self._backoff.pop(entry.name, None)
        if fired:
            self._on_fired()
        # An entry backing off wakes the thread at its retry, not at the tick it missed.
        wakes = {**{n: d for n, d in self._due.items() if d is not None}, **self._retry_at}
        return max(min([MAX_WAIT, *((d - now).total_seconds() for d in wakes.values())]), 0.0) + 0.001

    def _run_entry(self, entry: Entry, now: datetime) -> bool:
        if entry.name not in self._due:
            # A new schedule starts at its next tick; one that fired before (in any
            # process) resumes after its newest firing, catching up if that was long ago.
            rows = last_fired(entry)
            self._due[entry.name] = entry.next_after(tick_of(rows[0]) if rows else now)
        due = self._due[entry.name]
        return due is not None and due <= now and self._fire_due(entry, due, now)

    def _fire_due(self, entry: Entry, due: datetime, now: datetime) -> bool:
        if now - due <= LATE_GRACE:
            # Only late by scheduling jitter: every tick that came due fires.
            fired = False
            tick: datetime | None = due
            while tick is not None and tick <= now:
                fired = fire(entry, tick, now) is not None or fired
                tick = entry.next_after(tick)
            self._due[entry.name] = tick
            return fired
        # Down for longer (no pool was running, or the database was away): the newest due
        # tick fires once, and the ones before it are skipped.
        newest, _ = entry.ticks_between(due, now)
        newest = newest or due
        rows = last_fired(entry)
        since = tick_of(rows[0]) if rows else due - timedelta(microseconds=1)
        missed = max(entry.ticks_between(since, newest)[1] - 1, 0)
        task = fire(entry, newest, now)
        self._due[entry.name] = entry.next_after(newest)
        if task is not None and missed:
            logger.warning(
                "schedule=%s event=ticks_missed missed=%s task=%s tick=%s: ran once for the newest",
                entry.name,
                missed,
                task.pk,
                newest.isoformat(),
            )
        return task is not None


def _tidy_connections(pool_name: str) -> None:
    # Closes a connection past CONN_MAX_AGE (at 0, every one) so no idle session waits for the next tick.
    try:
        close_old_connections()
    except Exception:
        logger.exception("pool=%s event=close_failed", pool_name)
