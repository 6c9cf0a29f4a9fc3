"""taskq's pytest plugin (a pytest11 entry point): fixtures, and an opt-in guard against leaked threads.

pytest loads it in every run where taskq is installed, Django project or not, so it
imports taskq.testing (and with it the models) only inside fixtures, once Django is set up.
The guard is off unless ``taskq_leak_guard = true`` (ini) or ``--taskq-leak-guard`` asks for it:
on 1,000 trivial tests it cost 0.1 to 0.2 ms of CPU per test (2 to 7 %), which every user's suite would pay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from taskq.models import Task
    from taskq.pool import Pool


# pytest-django's public fixtures that give a test the database.
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}
)


def _uses_database(request: pytest.FixtureRequest) -> bool:
    if not request.config.pluginmanager.hasplugin("django"):
        return False
    return request.node.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES.intersection(request.fixturenames)
    )


BOOL: Final = "bool"  # a name, not a literal: mypy would read a bare "bool" here as a type
GUARD_HELP = (
    "fail a test whose taskq threads are still alive, or still hold database sessions, at teardown "
    "(off by default: it adds a little to every test)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Offer the leak guard as an ini setting and a command-line flag."""
    parser.addini("taskq_leak_guard", GUARD_HELP, type=BOOL, default=False)
    parser.addoption("--taskq-leak-guard", action="store_true", help=GUARD_HELP)


def pytest_configure(config: pytest.Config) -> None:
    """Register the leak guard for every test when the run asks for it."""
    if config.getoption("taskq_leak_guard") or config.getini("taskq_leak_guard"):
        config.pluginmanager.register(LeakGuard(), "taskq-leak-guard")


class LeakGuard:
    """An autouse fixture, registered only when asked for, so runs without it pay nothing per test."""

    @pytest.fixture(autouse=True)
    def _taskq_leak_guard(self, request: pytest.FixtureRequest) -> Iterator[None]:
        """Fail a test whose taskq threads are still alive, or still hold sessions, at teardown."""
        from django.apps import apps

        if not apps.ready:
            # Without a configured Django there can be no pool, so nothing to guard.
            yield
            return
        if _uses_database(request):
            # Set the database up first so that it is torn down last: the check then runs
            # after the test's own fixtures stopped their pools, while the threads of one
            # left running still have their database (pytest-django blocks it afterwards).
            request.getfixturevalue("db")
        from taskq.testing import ThreadWatch

        watch = ThreadWatch()
        yield
        problems = watch.finish()
        if problems:
            pytest.fail(
                "taskq threads outlived the test: "
                + "; ".join(problems)
                + ". Stop every pool you start: use the taskq_pool fixture or taskq.testing.running_pool().",
                pytrace=False,
            )


@pytest.fixture
def taskq_pool(transactional_db: None) -> Iterator[Pool]:
    """A real pool for this test, stopped at teardown with every connection its threads opened."""
    from taskq.testing import running_pool

    with running_pool() as pool:
        yield pool


@pytest.fixture
def taskq_immediate() -> Iterator[None]:
    """Immediate mode for this test: enqueue() runs the task in this thread once committed."""
    from django.test import override_settings

    with override_settings(TASKQ_IMMEDIATE=True):
        yield


@pytest.fixture
def taskq_run_due(db: None) -> Callable[..., list[Task]]:
    """taskq.testing.run_due: run every due queued task now, in this thread, and return them."""
    from taskq.testing import run_due

    return run_due
