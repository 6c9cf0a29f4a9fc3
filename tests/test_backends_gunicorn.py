"""The seeds' scenario through Django's Tasks API: gunicorn views enqueue with @task, pools run them.

The server is a real gunicorn (two gthread workers, each with its pool, started and stopped
by deploy/gunicorn.conf.py's hooks) on the test database, with CONN_MAX_AGE=0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest
from django.db import connection
from django.test import override_settings

from taskq.models import Status, Task, Worker
from tests.helpers import other_sessions, subprocess_env, wait_until
from tests.processes import ROOT
from tests.testapp import dtasks
from tests.testapp.models import Item

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs only on Unix"),
    pytest.mark.django_db(transaction=True),
]
TASKS = {"default": {"BACKEND": "taskq.backends.TaskqBackend", "QUEUES": ["default", "emails"]}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    """A gunicorn serving tests.testapp.durls with the Django Tasks settings."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log_path = log
        env = subprocess_env(
            DJANGO_SETTINGS_MODULE="tests.testapp.tasks_settings",
            PORT=str(self.port),
            WEB_CONCURRENCY="2",
            TASKQ_WORKERS="2",
        )
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "demo_site.wsgi"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        with urlopen(self.url(path), data=urlencode(data).encode(), timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def get(self, path: str) -> dict[str, Any]:
        with urlopen(self.url(path), timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def answers(self) -> bool:
        try:
            self.get("/dtasks/results/0/")
        except URLError as exc:
            return getattr(exc, "code", None) == 404
        return True

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM, as a process manager sends it, and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    if connection.vendor == "sqlite":
        pytest.skip("sessions are counted on a database server; SQLite has none")
    # The server runs with TaskqBackend; this process reads its results with the same setting.
    with override_settings(TASKS=TASKS):
        server = Site(tmp_path / "gunicorn.log")
        try:
            wait_until(server.answers, timeout=60)
            yield server
        finally:
            server.stop()
            print(server.log())  # shown by pytest only if the test fails


def test_two_hundred_tasks_from_gunicorn_views_run_and_leave_no_session(site: Site) -> None:
    wait_until(lambda: Worker.objects.count() == 2, timeout=30)
    pools = set(Worker.objects.values_list("name", flat=True))

    with ThreadPoolExecutor(max_workers=8) as requests:
        answers = list(requests.map(lambda i: site.post("/dtasks/items/", {"name": f"d-{i}"}), range(200)))
    assert {a["status"] for a in answers} == {"READY"}
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == 200

    def all_done() -> bool:
        return Task.objects.filter(pk__in=[int(i) for i in ids], status=Status.SUCCEEDED).count() == 200

    wait_until(all_done, timeout=120)
    assert sorted(Item.objects.values_list("name", flat=True)) == sorted(f"d-{i}" for i in range(200))
    backend = dtasks.task_backends["default"]
    results = [backend.get_result(i) for i in ids]
    assert {str(r.status) for r in results} == {"SUCCESSFUL"}
    assert {r.attempts for r in results} == {1}
    assert {w for r in results for w in r.worker_ids} <= pools
    assert sorted(int(r.return_value or 0) for r in results) == sorted(
        Item.objects.values_list("pk", flat=True)
    )
    shown = site.get(f"/dtasks/results/{ids[0]}/")
    assert shown["status"] == "SUCCESSFUL"
    assert shown["value"] == results[0].return_value

    # CONN_MAX_AGE=0: the idle site, requests and pools alike, holds no session.
    wait_until(lambda: other_sessions() == 0, timeout=15)
    assert site.stop() == 0
    log = site.log()
    assert "event=stop_timeout" not in log
    assert Worker.objects.count() == 0
    wait_until(lambda: other_sessions() == 0, timeout=15)
