"""A pool started before ``migrate``: one clear error, a quiet back-off, recovery once the tables exist."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from taskq import enqueue
from taskq import pool as pool_module
from taskq.models import Status, Task, Worker
from taskq.pool import Pool
from tests.helpers import wait_until
from tests.testapp import tasks

TABLES = [Task._meta.db_table, Worker._meta.db_table]


def rename(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {connection.ops.quote_name(old)} RENAME TO {connection.ops.quote_name(new)}"
        )


@pytest.fixture
def unmigrated(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Hide taskq's tables as if migrate never ran; the returned callable brings them back."""
    monkeypatch.setattr(pool_module, "ERROR_BACKOFF_MIN", 0.02)
    monkeypatch.setattr(pool_module, "ERROR_BACKOFF_MAX", 0.05)
    hidden: list[str] = []

    def restore() -> None:
        while hidden:
            table = hidden.pop()
            rename(f"{table}_hidden", table)

    for table in TABLES:
        rename(table, f"{table}_hidden")
        hidden.append(table)
    try:
        yield restore
    finally:
        restore()


def records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "taskq" and f"event={event}" in r.getMessage()]


def test_a_pool_without_its_tables_says_run_migrate_once_and_recovers(
    unmigrated: Callable[[], None], make_pool: Callable[..., Pool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="taskq")
    pool = make_pool(workers=1)

    # Many back-off rounds pass, each seen only at DEBUG.
    wait_until(lambda: len(records(caplog, "tables_still_missing")) >= 10)
    [error] = records(caplog, "tables_missing")
    assert error.levelno == logging.ERROR
    assert error.exc_info is None
    assert "run manage.py migrate" in error.getMessage()
    assert Task._meta.db_table in error.getMessage()
    taskq_errors = [r for r in caplog.records if r.name == "taskq" and r.levelno >= logging.WARNING]
    assert taskq_errors == [error]
    assert not any(r.exc_info for r in caplog.records if r.name == "taskq")

    unmigrated()
    done = enqueue(tasks.add, 2, 3)
    wait_until(lambda: Task.objects.get(pk=done.pk).status == Status.SUCCEEDED)
    [found] = records(caplog, "tables_found")
    assert found.levelno == logging.INFO
    assert Worker.objects.filter(name=pool.name).exists()
    assert len(records(caplog, "tables_missing")) == 1


def test_a_pool_that_stops_without_its_tables_logs_no_traceback(
    unmigrated: Callable[[], None], make_pool: Callable[..., Pool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="taskq")
    pool = make_pool(workers=1)
    wait_until(lambda: records(caplog, "tables_missing"))
    assert pool.stop()
    assert not any(r.exc_info for r in caplog.records if r.name == "taskq")


def test_the_missing_tables_error_is_repeated_only_after_a_long_quiet(
    unmigrated: Callable[[], None],
    make_pool: Callable[..., Pool],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_module, "TABLES_MISSING_REPEAT", 0.0)
    caplog.set_level(logging.DEBUG, logger="taskq")
    make_pool(workers=1)
    wait_until(lambda: len(records(caplog, "tables_missing")) >= 3)


def test_a_burst_worker_without_its_tables_ends_saying_run_migrate(
    unmigrated: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(CommandError, match=r"taskq's tables \(taskq_task, taskq_worker\) do not exist: run"):
        call_command("taskq_worker", burst=True, workers=1)
    assert not any(r.exc_info for r in caplog.records if r.name == "taskq")


@pytest.mark.parametrize("command", [["taskq_status"], ["taskq_prune", "--older-than", "1d"]])
def test_commands_without_the_tables_say_run_migrate(
    unmigrated: Callable[[], None], command: list[str]
) -> None:
    with pytest.raises(
        CommandError, match=r"\(taskq_task, taskq_worker\) do not exist: run manage.py migrate"
    ):
        call_command(*command)
