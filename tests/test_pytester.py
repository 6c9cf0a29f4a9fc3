"""Proof that the seeds' bug is gone: a user's project, written here, tested by pytest in a subprocess.

The project saves articles from other threads, as in Django ticket #9878 and the blog post:
once through taskq's pool, once through the blog's bare threads. Each run gets a test
database of its own on the outer run's server, and its own Django, in a child process.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

pytest_plugins = ["pytester"]

TEARDOWN_ERROR = "Error when trying to teardown test databases"
# Bounds the child's whole run, MariaDB's DROP DATABASE included, below the outer test's timeout.
CHILD_TIMEOUT = 100

FILES = {
    "pytest.ini": """
        [pytest]
        DJANGO_SETTINGS_MODULE = child_settings
        timeout = 90
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models


        class Article(models.Model):
            title = models.CharField(max_length=100)
    """,
    "shop/tasks.py": """
        from shop.models import Article


        def create_article(n):
            Article.objects.create(title=f"article {n}")
    """,
    # The blog post's code, as it was before its fix: nothing closes the thread's connection.
    "shop/threads.py": """
        from threading import Thread

        from shop.models import Article


        class APIThread(Thread):
            def __init__(self, n):
                self.n = n
                Thread.__init__(self)

            def run(self):
                Article.objects.create(title=f"article {self.n}")


        def make_thread(n):
            APIThread(n).start()
    """,
    "conftest.py": """
        import gc

        # A dead thread's connection is closed only when the garbage collector gets round
        # to it: the "race condition" of ticket #9878. Without it, a leak shows every time,
        # and code that closes its connections has to do so itself.
        gc.disable()
    """,
    "test_with_taskq.py": """
        from taskq import enqueue
        from taskq.testing import wait_until_drained

        from shop.models import Article
        from shop.tasks import create_article


        def test_200_articles(taskq_pool):
            for n in range(200):
                enqueue(create_article, n)
            wait_until_drained(timeout=60)
            assert Article.objects.count() == 200
    """,
    "test_with_bare_threads.py": """
        import time

        import pytest

        from shop.models import Article
        from shop.threads import make_thread

        # Fewer than 200: every one of these keeps a session, and the server is shared.
        COUNT = 20


        @pytest.mark.django_db(transaction=True)
        def test_articles_from_bare_threads():
            for n in range(COUNT):
                make_thread(n)
            deadline = time.monotonic() + 60
            while Article.objects.count() < COUNT:
                assert time.monotonic() < deadline, "the threads did not save their articles"
                time.sleep(0.02)
    """,
    "test_leaky.py": """
        import threading

        import pytest

        from shop.models import Article
        from taskq.pool import Pool


        @pytest.mark.django_db(transaction=True)
        def test_leaves_a_pool_running():
            Pool(workers=1, poll_interval=0.05).start()


        @pytest.mark.django_db(transaction=True)
        def test_leaves_a_session_open():
            thread = threading.Thread(target=Article.objects.count, name="taskq-by-hand")
            thread.start()
            thread.join()


        def test_stops_its_pool(taskq_pool):
            assert taskq_pool.alive
    """,
}


class Child:
    """A user's project in ``pytester``'s directory, tested against its own test database."""

    def __init__(self, pytester: pytest.Pytester, database: dict[str, Any]) -> None:
        self.pytester = pytester
        self.database = database
        settings = f"""
            SECRET_KEY = "child-project"
            USE_TZ = True
            INSTALLED_APPS = ["django.contrib.contenttypes", "taskq", "shop"]
            DATABASES = {{"default": {database!r}}}
            DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
            TASKQ_POLL_INTERVAL = 0.05
        """
        for name, text in {**FILES, "child_settings.py": settings}.items():
            path = pytester.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())

    @property
    def test_database(self) -> str:
        return str(self.database["TEST"]["NAME"])

    def run(self, *args: str) -> pytest.RunResult:
        # --ds beats the DJANGO_SETTINGS_MODULE that the outer run leaves in the environment.
        return self.pytester.runpytest_subprocess(
            *args, "--ds=child_settings", "-p", "no:cacheprovider", timeout=CHILD_TIMEOUT
        )

    def test_database_exists(self) -> bool:
        if self.database["ENGINE"] == "django.db.backends.sqlite3":
            return Path(self.test_database).exists()
        with connection._nodb_cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.test_database])
            else:
                cursor.execute(
                    "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [self.test_database]
                )
            return cursor.fetchone() is not None

    def drop_test_database(self) -> None:
        """Drop what a failed child run left behind; its process, and so its sessions, are gone."""
        if self.database["ENGINE"] == "django.db.backends.sqlite3" or not self.test_database_exists():
            return
        name = connection.ops.quote_name(self.test_database)
        force = " WITH (FORCE)" if connection.vendor == "postgresql" else ""
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}{force}")


def child_database(tmp: Path, engine: str | None = None) -> dict[str, Any]:
    """The outer run's database server, under names that are the child's alone."""
    outer = connection.settings_dict
    database: dict[str, Any] = {
        key: outer[key] for key in ("ENGINE", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")
    }
    database["OPTIONS"] = dict(database["OPTIONS"])
    if engine is not None:
        database.update(ENGINE=engine, HOST="", PORT="", USER="", PASSWORD="", OPTIONS={})
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # The pool's threads share the test database, so it must be a file.
        database.update(NAME=str(tmp / "child.sqlite3"), TEST={"NAME": str(tmp / "test-child.sqlite3")})
    else:
        name = f"taskq_child_{uuid.uuid4().hex[:12]}"
        database.update(NAME=name, TEST={"NAME": f"test_{name}"})
    if database["ENGINE"] == "django.db.backends.mysql":
        # DROP DATABASE waits for metadata locks held by other sessions, for a day by default.
        database["OPTIONS"]["init_command"] = "SET SESSION lock_wait_timeout = 20"
    return database


@pytest.fixture
def child(pytester: pytest.Pytester, django_db_blocker: Any) -> Iterator[Child]:
    project = Child(pytester, child_database(pytester.path))
    with django_db_blocker.unblock():
        try:
            yield project
        finally:
            project.drop_test_database()


def test_200_tasks_on_the_pool_leave_no_session_behind(child: Child) -> None:
    result = child.run("test_with_taskq.py")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert TEARDOWN_ERROR not in output
    assert not child.test_database_exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL refuses to drop a database in use")
def test_the_blog_posts_bare_threads_leave_sessions_behind(child: Child) -> None:
    result = child.run("test_with_bare_threads.py")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert TEARDOWN_ERROR in output
    assert "is being accessed by other users" in output
    assert child.test_database_exists()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the child runs on SQLite; once is enough")
@pytest.mark.parametrize(
    "switch", [["--taskq-leak-guard"], ["-o", "taskq_leak_guard=true"]], ids=["flag", "ini"]
)
def test_the_leak_guard_fails_tests_that_leak_taskq_threads_or_sessions(
    pytester: pytest.Pytester, switch: list[str]
) -> None:
    project = Child(pytester, child_database(pytester.path, engine="django.db.backends.sqlite3"))
    result = project.run("test_leaky.py", *switch)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_pool_running*",
            "*taskq threads outlived the test: *taskq-dispatcher-* is still running*",
            "*ERROR at teardown of test_leaves_a_session_open*",
            "*thread taskq-by-hand ended without closing its session on 'default'*",
        ]
    )


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the child runs on SQLite; once is enough")
def test_the_leak_guard_is_off_unless_asked_for(pytester: pytest.Pytester) -> None:
    project = Child(pytester, child_database(pytester.path, engine="django.db.backends.sqlite3"))
    result = project.run("test_leaky.py", "-k", "not leaves_a_pool_running")
    result.assert_outcomes(passed=2)
    assert "taskq threads outlived the test" not in result.stdout.str()


def test_the_plugin_is_harmless_without_django(pytester: pytest.Pytester, monkeypatch: Any) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--taskq-leak-guard", timeout=CHILD_TIMEOUT
    )
    result.assert_outcomes(passed=1)
