"""taskq's pytest plugin (a pytest11 entry point): fixtures, and a guard against leaked threads.

pytest loads it in every run where taskq is installed, Django project or not, so it
imports taskq.testing (and with it the models) only inside fixtures, once Django is set up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

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


@pytest.fixture(autouse=True)
def _taskq_leak_guard(request: pytest.FixtureRequest) -> Iterator[None]:
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
