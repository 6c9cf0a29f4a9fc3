"""manage.py taskq_worker: in this process for its flags, as a real process for its exit and signals."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from taskq import enqueue, options, process
from taskq.models import Status, Task, Worker
from tests import processes
from tests.helpers import taskq_threads, wait_until
from tests.testapp import tasks
from tests.testapp.models import Item


def test_burst_runs_every_due_task_of_its_queues_then_returns(transactional_db: None) -> None:
    done = [enqueue(tasks.add, i, 1) for i in range(5)]
    retried = enqueue(tasks.retry_once, "burst")
    other = options(queue="other").enqueue(tasks.add, 1, 1)
    later = options(delay=3600).enqueue(tasks.add, 1, 1)
    out = StringIO()

    call_command("taskq_worker", "--burst", "--workers", "2", "--queues", "default, spare", stdout=out)

    results = Task.objects.filter(pk__in=[t.pk for t in done]).order_by("pk")
    assert [t.result for t in results] == [1, 2, 3, 4, 5]
    retried.refresh_from_db()
    assert (retried.status, retried.attempts) == (Status.SUCCEEDED, 2)
    assert Task.objects.get(pk=other.pk).status == Status.QUEUED
    assert Task.objects.get(pk=later.pk).status == Status.QUEUED
    assert not Worker.objects.exists()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("2 threads, queues=default,spare")
    assert lines[-1].endswith(": stopped")


def test_it_replaces_a_pool_the_app_started(transactional_db: None) -> None:
    autostarted = process.start(workers=1)
    call_command("taskq_worker", "--burst", "--workers", "1", stdout=StringIO())
    assert process.get_pool() is None
    assert not autostarted.alive


def signal_when(condition: Callable[[], object], signum: signal.Signals) -> threading.Thread:
    """Send ``signum`` to this process, as a terminal or supervisor would, once ``condition`` holds."""

    def send() -> None:
        wait_until(condition)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_sigterm_stops_it_in_this_process_and_restores_the_handlers(transactional_db: None) -> None:
    task = enqueue(tasks.block, "sigterm")
    tasks.event("sigterm").set()  # it finishes at once; the pool still has to stop cleanly
    sender = signal_when(tasks.event("sigterm:started").is_set, signal.SIGTERM)

    def ours(signum: int, frame: object) -> None:
        raise AssertionError("the command's own handler should have been in place")

    before = signal.signal(signal.SIGTERM, ours)
    try:
        call_command("taskq_worker", "--workers", "1", stdout=StringIO())
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
    sender.join()
    task.refresh_from_db()
    assert task.status == Status.SUCCEEDED


def test_a_second_ctrl_c_stops_waiting_for_running_tasks(transactional_db: None) -> None:
    task = enqueue(tasks.block, "stuck")
    out = StringIO()
    first = signal_when(tasks.event("stuck:started").is_set, signal.SIGINT)
    second = signal_when(lambda: first.is_alive() is False and ": stopping" in out.getvalue(), signal.SIGINT)

    with pytest.raises(CommandError, match="interrupted again") as raised:
        call_command("taskq_worker", "--workers", "1", stdout=out)

    second.join()
    assert raised.value.returncode == 130
    assert Task.objects.get(pk=task.pk).status == Status.RUNNING  # abandoned; its lease will lapse
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    tasks.event("stuck").set()
    wait_until(lambda: not taskq_threads())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "a whole number from 1 to 256, not '0'"),
        (["--workers", "257"], "a whole number from 1 to 256, not '257'"),
        (["--workers", "99999999999999999999"], "a whole number from 1 to 256, not '99999999999999999999'"),
        (["--workers", "2.5"], "a whole number from 1 to 256, not '2.5'"),
        (["--workers", "many"], "a whole number from 1 to 256, not 'many'"),
        (["--queues", "a,,b"], "comma-separated queue names, not 'a,,b'"),
    ],
)
def test_bad_flags_say_what_is_expected(flags: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("taskq_worker", *flags)


@pytest.mark.parametrize("workers", [0, 257, 10**20, 2.5, True])
def test_out_of_range_workers_keyword_is_refused_before_anything_starts(workers: object) -> None:
    with pytest.raises(CommandError, match=r"--workers: expected a whole number from 1 to 256, not "):
        call_command("taskq_worker", workers=workers, burst=True)
    assert not taskq_threads()


def test_burst_process_drains_the_queue_and_exits_0(transactional_db: None) -> None:
    added = [enqueue(tasks.add, i, i) for i in range(3)]
    failing = enqueue(tasks.fail, "always")

    result = processes.run("taskq_worker", "--burst", "--workers", "2")

    assert result.returncode == 0, result.stderr
    results = Task.objects.filter(pk__in=[t.pk for t in added]).order_by("pk")
    assert [t.result for t in results] == [0, 2, 4]
    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == (Status.FAILED, failing.max_attempts)
    assert result.stdout.strip().endswith(": stopped")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_running_task_finish_and_leaves_the_rest_queued(
    transactional_db: None, signum: signal.Signals
) -> None:
    with processes.started("taskq_worker", "--workers", "1") as worker:
        wait_until(Worker.objects.exists, timeout=60)
        # Nobody sets this event in the worker's process, so the task runs for its full second.
        running = enqueue(tasks.mark_then_block, "never-set", timeout=1.0)
        # Started, not just claimed: a claimed task that has not started yet is given back.
        wait_until(Item.objects.filter(name="never-set").exists)
        waiting = enqueue(tasks.add, 1, 1)  # its only thread is busy, so nothing claims this one
        worker.send_signal(signum)
        out, err = worker.communicate(timeout=60)

    assert worker.returncode == 0, err
    running.refresh_from_db()
    assert (running.status, running.result) == (Status.SUCCEEDED, "gave up waiting")
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts, waiting.worker) == (Status.QUEUED, 0, "")
    assert not Worker.objects.exists()
    stopping, stopped = out.splitlines()[-2:]
    assert stopping.endswith(": stopping")
    assert stopped.endswith(": stopped")
