from __future__ import annotations

import json
import os
import select
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.signals import request_started
from django.db import connection
from django.test import Client

from taskq import enqueue, process
from taskq.models import Task, Worker
from taskq.pool import Pool
from taskq.process import Mode, decide
from tests.helpers import wait_until
from tests.testapp import tasks


@pytest.mark.parametrize(
    ("argv", "environ", "forced", "expected"),
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, None, Mode.EAGER),
        (["manage.py", "runserver"], {}, None, Mode.OFF),  # the autoreloader's parent
        (["manage.py", "runserver", "--noreload"], {}, None, Mode.EAGER),
        (["/srv/manage.py", "migrate"], {}, None, Mode.OFF),
        (["manage.py", "shell"], {}, None, Mode.OFF),
        (["manage.py", "test"], {}, None, Mode.OFF),
        (["manage.py", "collectstatic"], {}, None, Mode.OFF),
        (["manage.py", "check"], {}, None, Mode.OFF),
        (["manage.py", "makemigrations"], {}, None, Mode.OFF),
        (["manage.py", "taskq_worker"], {}, None, Mode.OFF),
        (["manage.py"], {}, None, Mode.OFF),
        (["/usr/bin/django-admin", "migrate"], {}, None, Mode.OFF),
        (
            ["/usr/lib/python3/site-packages/django/__main__.py", "runserver"],
            {"RUN_MAIN": "true"},
            None,
            Mode.EAGER,
        ),
        (["/venv/bin/gunicorn", "site.wsgi"], {}, None, Mode.LAZY),
        (["uwsgi"], {}, None, Mode.LAZY),
        (["/venv/bin/uvicorn", "site.asgi:application"], {}, None, Mode.EAGER),
        (["daphne"], {}, None, Mode.EAGER),
        (["hypercorn"], {}, None, Mode.EAGER),
        (["/venv/bin/pytest"], {}, None, Mode.OFF),
        (["mod_wsgi"], {}, None, Mode.OFF),  # pytest is loaded in this process
        (["manage.py", "migrate"], {}, True, Mode.EAGER),
        (["gunicorn"], {}, False, Mode.OFF),
        ([], {}, None, Mode.OFF),
    ],
)
def test_decide(argv: list[str], environ: dict[str, str], forced: bool | None, expected: Mode) -> None:
    assert decide(argv, environ, forced) is expected


@pytest.fixture
def clean_process() -> Iterator[None]:
    yield
    request_started.disconnect(dispatch_uid="taskq.lazy_start")
    assert process.stop()


def test_arm_off_starts_nothing(clean_process: None, settings: Any) -> None:
    settings.TASKQ_AUTOSTART = False
    assert process.arm() is Mode.OFF
    assert process.get_pool() is None


def test_arm_eager_starts_the_pool_once(transactional_db: None, clean_process: None, settings: Any) -> None:
    settings.TASKQ_AUTOSTART = True
    settings.TASKQ_WORKERS = 1
    assert process.arm() is Mode.EAGER
    pool = process.get_pool()
    assert pool is not None
    assert pool.alive
    assert process.start() is pool
    pk = enqueue(tasks.add, 1, 2).pk
    wait_until(lambda: Task.objects.filter(pk=pk).succeeded().exists())


def test_lazy_mode_starts_on_the_first_request(
    transactional_db: None, clean_process: None, settings: Any
) -> None:
    settings.TASKQ_WORKERS = 1
    assert process.arm(["gunicorn", "demo_site.wsgi"], {}) is Mode.LAZY
    assert process.get_pool() is None
    Client().get("/admin/login/")
    pool = process.get_pool()
    assert pool is not None
    assert pool.alive
    Client().get("/admin/login/")
    assert process.get_pool() is pool


def test_notify_without_a_pool_is_harmless() -> None:
    assert process.get_pool() is None
    process.notify()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
# Forking a threaded process is the very case under test (gunicorn --preload).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_a_fresh_pool_and_never_inherits_a_connection(
    transactional_db: None, settings: Any
) -> None:
    settings.TASKQ_WORKERS = 1
    # A long poll keeps the parent's dispatcher waiting on an Event, not inside a database
    # driver, at the moment of the fork: a C-level lock held then would hang the child.
    settings.TASKQ_POLL_INTERVAL = 60.0
    parent_pool = process.start()
    try:
        wait_until(lambda: Worker.objects.filter(name=parent_pool.name).exists())
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert connection.connection is not None
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, whose coverage is not collected
            signal.alarm(60)  # a wedged child dies rather than hang the suite
            settings.TASKQ_POLL_INTERVAL = 0.05
            report: dict[str, Any] = {}
            try:
                child_pool = process.get_pool()
                report["fresh"] = child_pool is not None and child_pool is not parent_pool
                report["dropped"] = connection.connection is None
                pk = enqueue(tasks.add, 40, 2).pk
                process.notify()
                wait_until(lambda: Task.objects.filter(pk=pk).succeeded().exists())
                report["ran"] = True
                report["stopped"] = process.stop()
                connection.close()
            finally:
                os.write(write_end, json.dumps(report).encode())
                os._exit(0)
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], 90)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        with os.fdopen(read_end) as pipe:
            report = json.loads(pipe.read() or "{}") if ready else {}
        os.waitpid(pid, 0)
        assert report == {"fresh": True, "dropped": True, "ran": True, "stopped": True}
        # The child dropped the inherited session without closing it, so the parent's still works.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        assert process.get_pool() is parent_pool
    finally:
        assert process.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forking_a_process_without_a_pool_starts_none_in_the_child() -> None:
    assert process.get_pool() is None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write_end, b"none" if process.get_pool() is None else b"pool")
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"none"
    os.waitpid(pid, 0)


def test_a_held_dispatcher_resumes_after_release(transactional_db: None) -> None:
    with Pool(workers=1, poll_interval=0.05) as pool:
        assert pool.hold_for_fork()
        pk = enqueue(tasks.add, 3, 4).pk
        pool.release_after_fork()
        wait_until(lambda: Task.objects.filter(pk=pk).succeeded().exists())
