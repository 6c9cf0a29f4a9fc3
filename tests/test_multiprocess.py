from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskq import enqueue
from taskq.models import Status, Task
from tests.helpers import subprocess_env
from tests.testapp import tasks
from tests.testapp.models import Item

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_one_database_and_run_every_task_exactly_once() -> None:
    # Each task waits until both processes have claimed: taskq is fast enough that the first
    # process to start would otherwise run all 150 before the second one is up.
    pks = [enqueue(tasks.create_item_once_pools_claimed, f"mp-{i}", 2).pk for i in range(150)]
    command = [sys.executable, "manage.py", "taskq_worker", "--burst", "--workers", "3"]
    env = subprocess_env()
    children = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        outputs.append(out)
        assert child.returncode == 0, out
    assert Task.objects.filter(pk__in=pks, status=Status.SUCCEEDED, attempts=1).count() == 150
    names = list(Item.objects.values_list("name", flat=True))
    assert sorted(names) == sorted(f"mp-{i}" for i in range(150))
    workers = set(Task.objects.values_list("worker", flat=True))
    assert len(workers) == 2, f"both processes should have claimed work: {workers}\n{outputs}"
