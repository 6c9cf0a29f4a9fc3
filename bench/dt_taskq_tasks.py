"""The benchmark task declared for Django's Tasks API and run by taskq (taskq.backends.TaskqBackend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import tasks

if TYPE_CHECKING:
    from django_tasks import task
else:
    try:
        from django.tasks import task
    except ImportError:
        from django_tasks import task


@task(backend="taskq")
def write(n: int, t_enq: float, wait: float = 0.0) -> None:
    """Wait, then write, like every other system's task."""
    tasks.write(n, t_enq, wait)
