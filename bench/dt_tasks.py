"""The benchmark task declared for Django's Tasks API (django-tasks + django-tasks-db)."""

from __future__ import annotations

from django_tasks import task  # type: ignore[import-not-found, unused-ignore]

from bench import tasks


@task()  # type: ignore[misc, untyped-decorator, unused-ignore]
def write(n: int, t_enq: float, wait: float = 0.0) -> None:
    """Wait, then write, like every other system's task."""
    tasks.write(n, t_enq, wait)
