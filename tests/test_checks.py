from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from taskq.checks import check_connection_limit, check_settings, check_uwsgi_threads


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages if m.id]


# Django 6.1 runs database-tagged checks (taskq.W002) whenever tags are asked for by name.
@pytest.mark.django_db
def test_defaults_pass() -> None:
    assert check_settings() == []
    assert checks.run_checks(tags=["taskq"]) == []


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("TASKQ_WORKERS", 0, "taskq.E001"),
        ("TASKQ_LISTEN", "yes", "taskq.E029"),
        ("TASKQ_MAX_RESULT_BYTES", 0, "taskq.E030"),
        ("TASKQ_CLAIM_AHEAD", -1, "taskq.E031"),
        ("TASKQ_CLAIM_AHEAD", 17, "taskq.E031"),
        ("TASKQ_WORKERS", True, "taskq.E001"),
        ("TASKQ_WORKERS", "4", "taskq.E001"),
        ("TASKQ_WORKERS", 257, "taskq.E001"),
        ("TASKQ_POLL_INTERVAL", 0, "taskq.E002"),
        ("TASKQ_QUEUES", [], "taskq.E003"),
        ("TASKQ_QUEUES", "default", "taskq.E003"),
        ("TASKQ_QUEUES", ["ok", ""], "taskq.E003"),
        ("TASKQ_DEFAULT_MAX_ATTEMPTS", 0, "taskq.E004"),
        ("TASKQ_LEASE_SECONDS", -1, "taskq.E005"),
        ("TASKQ_RETRY_BACKOFF_BASE", -1, "taskq.E006"),
        ("TASKQ_RETRY_BACKOFF_MAX", "x", "taskq.E007"),
        ("TASKQ_RETENTION", timedelta(0), "taskq.E008"),
        ("TASKQ_AUTOSTART", "yes", "taskq.E009"),
        ("TASKQ_DEFAULT_TIMEOUT", 0, "taskq.E010"),
        ("TASKQ_MAX_ARGS_BYTES", 0, "taskq.E011"),
        ("TASKQ_SHUTDOWN_GRACE", -0.5, "taskq.E012"),
        ("TASKQ_PRUNE_INTERVAL", 0, "taskq.E013"),
        ("TASKQ_MAX_ABANDONED_THREADS", -1, "taskq.E014"),
        ("TASKQ_IMMEDIATE", 1, "taskq.E015"),
        ("TASKQ_DEFAULT_QUEUE", "", "taskq.E016"),
        ("TASKQ_DEFAULT_PRIORITY", 1.5, "taskq.E017"),
    ],
)
def test_bad_settings_are_reported(name: str, value: Any, check_id: str) -> None:
    with override_settings(**{name: value}):
        messages = check_settings()
    assert ids(messages) == [check_id]
    assert name in messages[0].msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKQ_RETENTION", None),
        ("TASKQ_RETENTION", 3600),
        ("TASKQ_DEFAULT_TIMEOUT", timedelta(seconds=5)),
        ("TASKQ_QUEUES", ("a", "b")),
        ("TASKQ_AUTOSTART", True),
        ("TASKQ_SHUTDOWN_GRACE", 0),
        ("TASKQ_WORKERS", 256),
    ],
)
def test_good_settings_pass(name: str, value: Any) -> None:
    with override_settings(**{name: value}):
        assert check_settings() == []


def test_backoff_base_above_max() -> None:
    with override_settings(TASKQ_RETRY_BACKOFF_BASE=10, TASKQ_RETRY_BACKOFF_MAX=5):
        assert ids(check_settings()) == ["taskq.E018"]


def test_unknown_setting_is_a_warning() -> None:
    with override_settings(TASKQ_WORKER=3):
        messages = check_settings()
    assert ids(messages) == ["taskq.W001"]
    assert messages[0].level == checks.WARNING


@pytest.fixture
def uwsgi_module() -> Iterator[types.SimpleNamespace]:
    # uWSGI injects a module named uwsgi into the processes it runs; this stands in for it.
    fake = types.SimpleNamespace(opt={})
    sys.modules["uwsgi"] = fake  # type: ignore[assignment]
    yield fake
    del sys.modules["uwsgi"]


def test_uwsgi_without_threads_is_an_error(uwsgi_module: types.SimpleNamespace) -> None:
    assert ids(check_uwsgi_threads()) == ["taskq.E020"]
    uwsgi_module.opt = {"enable-threads": True}
    assert check_uwsgi_threads() == []
    uwsgi_module.opt = {}
    with override_settings(TASKQ_AUTOSTART=False):
        assert check_uwsgi_threads() == []


def test_no_uwsgi_no_message() -> None:
    assert check_uwsgi_threads() == []


def server_max_connections() -> int | None:
    """The test server's connection limit, read here independently of taskq; None on SQLite."""
    query = {"postgresql": "SHOW max_connections", "mysql": "SELECT @@max_connections"}.get(connection.vendor)
    if query is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(query)
        return int(cursor.fetchone()[0])


@pytest.mark.django_db
def test_workers_beyond_the_servers_connection_limit_is_a_warning() -> None:
    limit = server_max_connections()
    if limit is None:
        pytest.skip("SQLite has no connection limit")
    with override_settings(TASKQ_WORKERS=limit):  # plus the dispatcher: one over the limit
        messages = check_connection_limit(databases=["default"])
        assert ids(messages) == ["taskq.W002"]
        assert messages[0].level == checks.WARNING
        assert f"up to {limit + 1} connections" in messages[0].msg
        assert f"allows {limit}" in messages[0].msg
        assert "TASKQ_WORKERS" in (messages[0].hint or "")
        assert ids(checks.run_checks(tags=["taskq"], databases=["default"])) == ["taskq.W002"]
    with override_settings(TASKQ_WORKERS=limit - 2):  # leaves one for the site's requests
        assert check_connection_limit(databases=["default"]) == []


@pytest.mark.django_db
def test_the_connection_limit_is_checked_only_with_database_checks(
    django_assert_num_queries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with override_settings(TASKQ_WORKERS=256), django_assert_num_queries(0):
        assert check_connection_limit(databases=None) == []
        assert check_connection_limit(databases=["other"]) == []
        call_command("check")
    assert "taskq.W002" not in capsys.readouterr().err
    assert checks.Tags.database in check_connection_limit.tags


@pytest.mark.django_db
def test_sqlite_never_warns_about_connections() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("only SQLite has no server limit")
    with override_settings(TASKQ_WORKERS=256):
        assert check_connection_limit(databases=["default"]) == []
