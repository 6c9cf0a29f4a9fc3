"""Periodic tasks in real pools and processes: each tick fires once and on time, even with runners busy."""

from __future__ import annotations

import itertools
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from taskq import enqueue
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from taskq.schedule import fire, tick_of
from taskq.schedule_entries import parse
from tests.helpers import other_sessions, subprocess_env, wait_until
from tests.testapp import periodic, tasks

MakePool = Callable[..., Pool]
ROOT = Path(__file__).resolve().parent.parent
PREFIX = "schedule:every-second:"
ONE_SECOND = timedelta(seconds=1)


def firings(since: datetime | None = None) -> list[Task]:
    rows = Task.objects.filter(uid__startswith=PREFIX)
    if since is not None:
        rows = rows.filter(run_after__gte=since)
    return sorted(rows, key=lambda t: str(t.uid))


def assert_one_row_per_tick(rows: list[Task]) -> None:
    ticks = [tick_of(t) for t in rows]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(gap == ONE_SECOND for gap in gaps), f"ticks missed or repeated: {ticks}"


@pytest.fixture
def every_second(settings: Any) -> None:
    settings.TASKQ_SCHEDULE = periodic.EVERY_SECOND


def test_two_pools_insert_one_row_per_tick_between_them(
    make_pool: MakePool, every_second: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="taskq"):
        make_pool(workers=1)
        make_pool(workers=1)
        wait_until(lambda: len(firings()) >= 5, timeout=20)
    rows = firings()
    assert_one_row_per_tick(rows)
    taken = [r for r in caplog.records if "event=tick_taken" in r.getMessage()]
    # Both pools noticed the ticks: the loser of each race found the row already there.
    assert len(taken) >= len(rows) - 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_pool_whose_runners_are_all_busy_still_fires_on_time(
    make_pool: MakePool, every_second: None
) -> None:
    pool = make_pool(workers=1)
    blocker = enqueue(tasks.block, "busy")
    wait_until(lambda: tasks.event("busy:started").is_set())
    blocked_since = timezone.now()
    wait_until(lambda: len(firings(blocked_since)) >= 3, timeout=10)
    rows = firings(blocked_since)
    assert pool.busy == 1
    assert Task.objects.get(pk=blocker.pk).status == Status.RUNNING
    assert all(t.status == Status.QUEUED for t in rows), "no runner was free, so none ran yet"
    assert all(t.enqueued_at - t.run_after < timedelta(seconds=2) for t in rows)
    assert_one_row_per_tick(rows)
    tasks.event("busy").set()
    wait_until(lambda: all(t.status == Status.SUCCEEDED for t in firings(blocked_since)[:3]))


def test_after_downtime_a_pool_fires_the_newest_tick_once_and_logs_the_skip(
    make_pool: MakePool, every_second: None, caplog: pytest.LogCaptureFixture
) -> None:
    entry = parse("every-second", periodic.EVERY_SECOND["every-second"])
    down_at = timezone.now().replace(microsecond=0) - timedelta(seconds=30)
    fire(entry, down_at, down_at)
    started = timezone.now()
    with caplog.at_level(logging.WARNING, logger="taskq"):
        make_pool(workers=1)
        wait_until(lambda: len(firings()) >= 3, timeout=20)
    rows = firings()
    assert tick_of(rows[1]) >= started - ONE_SECOND, "the missed ticks must not fire one by one"
    assert_one_row_per_tick(rows[1:])
    [warning] = [r.getMessage() for r in caplog.records if "event=ticks_missed" in r.getMessage()]
    missed = int(warning.split("missed=")[1].split()[0])
    assert 28 <= missed <= 40  # thirty seconds down, plus however long the pool took to start


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite has no sessions")
def test_the_scheduler_holds_no_idle_session_at_conn_max_age_zero(
    make_pool: MakePool, every_second: None
) -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    pool = make_pool(workers=1, poll_interval=5.0)
    wait_until(lambda: len(firings()) >= 2, timeout=20)
    wait_until(lambda: other_sessions() == 0, timeout=10)
    assert pool.stop()


@contextmanager
def scheduling_processes(*commands: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start processes that schedule EVERY_SECOND; stop them with SIGTERM on the way out."""
    children = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in commands
    ]
    try:
        yield children
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()


WORKER = [sys.executable, "-c", "from tests.testapp.periodic import worker; worker()"]


def test_two_worker_processes_fire_each_tick_once(transactional_db: None) -> None:
    with scheduling_processes(WORKER, WORKER) as children:
        wait_until(lambda: len(firings()) >= 6, timeout=40)
        assert all(child.poll() is None for child in children)
    rows = firings()
    assert_one_row_per_tick(rows)
    assert all(child.returncode == 0 for child in children)


def test_three_gunicorn_workers_and_a_worker_process_fire_each_tick_once_over_20_seconds(
    transactional_db: None,
) -> None:
    gunicorn = [
        sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", "127.0.0.1:0",
        "tests.testapp.periodic:wsgi()",
    ]  # fmt: skip
    with scheduling_processes(gunicorn, WORKER) as children:
        wait_until(lambda: firings(), timeout=40)
        # Every pool runs a scheduler: three in gunicorn's workers, one in the worker process.
        wait_until(lambda: Worker.objects.count() == 4, timeout=20)
        first = time.monotonic()
        wait_until(lambda: time.monotonic() - first >= 20, timeout=30, interval=0.5)
        assert all(child.poll() is None for child in children)
    rows = firings()
    assert len(rows) >= 20
    assert_one_row_per_tick(rows)
