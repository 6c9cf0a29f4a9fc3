"""Crash: a worker process killed with SIGKILL mid-task loses nothing, and only its running tasks run again.

Real ``manage.py taskq_worker`` processes share the test database, so these tests need
committed data (transactional) and a database other processes can open (a file or a server).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db.models import Count

from taskq import enqueue
from taskq.models import WORKER_LOST, Status, Task, Worker
from tests.helpers import subprocess_env, wait_until
from tests.test_reliability import wait_for_status
from tests.testapp import tasks
from tests.testapp.models import Item

ROOT = Path(__file__).resolve().parent.parent
LEASE = 2.0  # seconds; the children heartbeat every LEASE / 4


@dataclass
class Child:
    """A ``manage.py taskq_worker`` process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> str:
        """Stop it the graceful way, check it exited cleanly, and return what it printed."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        output = self.log.read_text()
        assert self.process.returncode == 0, output
        return output


StartWorker = Callable[..., Child]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start worker processes on the test database; any still alive at teardown are killed."""
    children: list[Child] = []

    def start(workers: int, **env: str) -> Child:
        log = tmp_path / f"worker-{len(children)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "taskq_worker", "--workers", str(workers)],
                cwd=ROOT,
                env=subprocess_env(TASKQ_TEST_LEASE=str(LEASE), **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        children.append(Child(process, log))
        return children[-1]

    yield start
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait(timeout=30)


def runs_of(prefix: str) -> dict[str, int]:
    """How many times each task that records ``prefix-N`` items has run."""
    rows = Item.objects.filter(name__startswith=prefix).values("name").annotate(n=Count("pk"))
    return {row["name"]: row["n"] for row in rows}


@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_task_loses_nothing_and_reruns_only_the_running_tasks(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    doomed, survivor = start_worker(2), start_worker(2)

    done = [enqueue(tasks.create_item, f"done-{i}") for i in range(4)]
    for task in done:
        wait_for_status(task, Status.SUCCEEDED, timeout=60)  # the children start up first
    # Four held tasks fill both processes' two threads, so later tasks wait in the queue.
    held = [enqueue(tasks.create_item_when_file_exists, f"held-{i}", str(release)) for i in range(4)]
    wait_until(lambda: len(runs_of("held-")) == 4)
    waiting = [enqueue(tasks.create_item, f"waiting-{i}") for i in range(4)]

    doomed.process.kill()  # SIGKILL: no handler, no cleanup, no goodbye
    assert doomed.process.wait(timeout=30) == -signal.SIGKILL
    marker = f":{doomed.process.pid}:"
    lost = list(Task.objects.filter(pk__in=[t.pk for t in held], worker__contains=marker))
    kept = list(Task.objects.filter(pk__in=[t.pk for t in held]).exclude(worker__contains=marker))
    assert len(lost) == len(kept) == 2
    assert all(t.status == Status.RUNNING for t in lost)
    assert set(Task.objects.filter(pk__in=[t.pk for t in waiting]).values_list("status", "attempts")) == {
        (Status.QUEUED, 0)
    }

    # The survivor requeues the dead process's tasks once their leases lapse, counting
    # the attempt, while its own running tasks keep their leases.
    for task in lost:
        lapsed_at = task.lease_expires_at
        assert lapsed_at is not None
        wait_for_status(task, Status.QUEUED, timeout=LEASE * 5)
        assert (task.attempts, task.error) == (1, WORKER_LOST)
        assert task.run_after >= lapsed_at
    for task in kept:
        task.refresh_from_db()
        assert (task.status, task.attempts) == (Status.RUNNING, 1)
    dead_name = lost[0].worker
    wait_until(lambda: not Worker.objects.filter(name=dead_name).exists(), timeout=LEASE * 5)

    release.touch()
    for task in done + held + waiting:
        wait_for_status(task, Status.SUCCEEDED, timeout=60)
    output = survivor.stop()
    assert "event=recovered" in output

    # Nothing lost; only the two tasks that were running in the killed process ran twice.
    assert {t.pk: t.attempts for t in Task.objects.all()} == {
        **{t.pk: 1 for t in done + kept + waiting},
        **{t.pk: 2 for t in lost},
    }
    lost_pks = {t.pk for t in lost}
    twice = {f"held-{i}" for i, t in enumerate(held) if t.pk in lost_pks}
    assert runs_of("done-") == {f"done-{i}": 1 for i in range(4)}
    assert runs_of("waiting-") == {f"waiting-{i}": 1 for i in range(4)}
    assert runs_of("held-") == {f"held-{i}": 2 if f"held-{i}" in twice else 1 for i in range(4)}
