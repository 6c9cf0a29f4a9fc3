"""Tasks written only against Django's Tasks API (django.tasks, or the django-tasks backport on 5.2)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.testapp import tasks as plain_tasks
from tests.testapp.models import Item

if TYPE_CHECKING:
    from django_tasks import TaskContext, TaskResultStatus, task, task_backends
    from django_tasks.base import Task as DjangoTask
    from django_tasks.exceptions import InvalidTaskError as DjangoInvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
else:
    try:
        from django.tasks import TaskContext, TaskResultStatus, task, task_backends
        from django.tasks.base import Task as DjangoTask
        from django.tasks.exceptions import InvalidTask as DjangoInvalidTask
        from django.tasks.exceptions import TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
    except ImportError:
        from django_tasks import TaskContext, TaskResultStatus, task, task_backends
        from django_tasks.base import Task as DjangoTask
        from django_tasks.exceptions import InvalidTaskError as DjangoInvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started

__all__ = [
    "DjangoInvalidTask",
    "DjangoTask",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]


class Boom(Exception):
    """An exception that lives outside builtins, so its class path has a module."""


@task
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
async def noop_async(*args: Any, **kwargs: Any) -> None:
    await asyncio.sleep(0)


@task
def meaning_of_life() -> int:
    return 42


@task
async def meaning_of_life_async() -> int:
    await asyncio.sleep(0)
    return 42


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def fail_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task
def fail_boom() -> None:
    raise Boom("a\nmessage over two lines")


@task
def complex_return_value() -> Any:
    return {1, 2}


@task(takes_context=True)
def context_info(context: TaskContext, key: str) -> dict[str, Any]:
    return {
        "id": context.task_result.id,
        "attempt": context.attempt,
        "status": str(context.task_result.status),
        "args": context.task_result.args,
        "key": key,
    }


@task(takes_context=True)
def fail_until_third_attempt(context: TaskContext) -> int:
    if context.attempt < 3:
        raise ValueError(f"attempt {context.attempt} fails")
    return context.attempt


@task
def record(key: str) -> str:
    """Append ``key`` to SEEN["order"], so a test can see the order tasks ran in."""
    plain_tasks.SEEN.setdefault("order", []).append(key)
    return key


@task
def wait_for(name: str, timeout: float = 20.0) -> bool:
    return plain_tasks.event(name).wait(timeout)


@task
def create_item(name: str) -> int:
    return Item.objects.create(name=name).pk
