"""manage.py taskq_worker: in this process for its flags, as a real process for its exit and signals."""

from __future__ import annotations

import signal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from taskq import enqueue, options, process
from taskq.models import Status, Task, Worker
from tests import processes
from tests.helpers import wait_until
from tests.testapp import tasks


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


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "at least 1, not '0'"),
        (["--workers", "many"], "at least 1, not 'many'"),
        (["--queues", "a,,b"], "comma-separated queue names, not 'a,,b'"),
    ],
)
def test_bad_flags_say_what_is_expected(flags: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("taskq_worker", *flags)


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
        running = enqueue(tasks.block, "never-set", timeout=1.0)
        wait_until(Task.objects.filter(pk=running.pk, status=Status.RUNNING).exists)
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
