"""Functions the periodic-task tests schedule, and entry points for the processes that schedule them."""

from __future__ import annotations

from typing import Any

# One firing a second: the schedule the multi-process tests run in every process.
EVERY_SECOND = {"every-second": {"task": "tests.testapp.periodic.tick", "every": 1}}


def tick() -> None:
    """Do nothing: the firing rows themselves are what the tests count."""


def greet(name: str, punctuation: str = "!") -> str:
    """Return a greeting, so a test can see that a schedule's arguments arrived."""
    return f"hello {name}{punctuation}"


def needs_an_argument(name: str) -> str:
    """A function @periodic must refuse: it takes an argument."""
    return name


def _schedule_every_second() -> None:
    from django.conf import settings

    # Before django.setup(), so the pool that setup starts already sees the schedule.
    settings.TASKQ_SCHEDULE = EVERY_SECOND


def wsgi() -> Any:
    """A WSGI app on the test settings whose pool starts at once and fires EVERY_SECOND (for gunicorn)."""
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    _schedule_every_second()
    settings.TASKQ_AUTOSTART = True
    return get_wsgi_application()


def worker() -> None:
    """Run ``manage.py taskq_worker`` with EVERY_SECOND scheduled, until SIGTERM."""
    import django
    from django.core.management import call_command

    _schedule_every_second()
    django.setup()
    call_command("taskq_worker", "--workers", "1")
