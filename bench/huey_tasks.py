"""The benchmark task declared for huey (huey.contrib.djhuey, RedisHuey on the local Redis)."""

from __future__ import annotations

from huey.contrib.djhuey import db_task  # type: ignore[import-not-found, unused-ignore]

from bench import tasks


# db_task, as huey's docs say for Django: the worker closes old connections around each task.
@db_task()  # type: ignore[misc, untyped-decorator, unused-ignore]
def write(n: int, t_enq: float, wait: float = 0.0) -> None:
    """Wait, then write, like every other system's task."""
    tasks.write(n, t_enq, wait)
