from __future__ import annotations

import datetime as dt
import functools
import math
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

import taskq
from taskq import InvalidTask, enqueue, options
from taskq.exceptions import TaskqError
from taskq.models import Status, Task
from tests.testapp import tasks
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db


def module_level(x: int) -> int:
    return x


class Holder:
    def method(self) -> None: ...

    @staticmethod
    def static() -> None: ...


def test_enqueue_stores_one_queued_row(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        task = enqueue(tasks.add, 2, b=3)
    row = Task.objects.get(pk=task.pk)
    assert row.status == Status.QUEUED
    assert row.path == "tests.testapp.tasks.add"
    assert row.args == [2]
    assert row.kwargs == {"b": 3}
    assert row.queue == "default"
    assert row.priority == 0
    assert row.max_attempts == 3
    assert row.attempts == 0
    assert row.timeout is None
    assert row.run_after == row.enqueued_at
    assert row.signature
    assert row.uid
    assert len(row.uid) == 32


def test_task_kwargs_named_like_options_reach_the_task() -> None:
    task = enqueue(tasks.echo, delay="kept", queue="kept", priority="kept", fn="kept")
    assert task.kwargs == {"delay": "kept", "queue": "kept", "priority": "kept", "fn": "kept"}
    assert task.queue == "default"


def test_decorator_defaults_and_call_options_override_them() -> None:
    assert tasks.decorated(2) == 4  # still a plain function
    task = enqueue(tasks.decorated, 1)
    assert (task.queue, task.priority, task.max_attempts, task.timeout) == ("special", 7, 5, 12.5)
    task = options(queue="other", priority=-1, max_attempts=1, timeout=3).enqueue(tasks.decorated, 1)
    assert (task.queue, task.priority, task.max_attempts, task.timeout) == ("other", -1, 1, 3)


def test_bare_decorator() -> None:
    @taskq.task
    def f() -> None: ...

    assert f.taskq_defaults == taskq.decorators.TaskDefaults()  # type: ignore[attr-defined]


def test_settings_supply_the_last_defaults(settings: Any) -> None:
    settings.TASKQ_DEFAULT_QUEUE = "q2"
    settings.TASKQ_DEFAULT_PRIORITY = 4
    settings.TASKQ_DEFAULT_MAX_ATTEMPTS = 9
    settings.TASKQ_DEFAULT_TIMEOUT = dt.timedelta(seconds=30)
    task = enqueue(tasks.add, 1, 2)
    assert (task.queue, task.priority, task.max_attempts, task.timeout) == ("q2", 4, 9, 30.0)


def test_delay_and_run_at_set_run_after() -> None:
    before = timezone.now()
    task = options(delay=60).enqueue(tasks.add, 1, 2)
    assert task.run_after >= before + dt.timedelta(seconds=60)
    task = options(delay=dt.timedelta(minutes=2)).enqueue(tasks.add, 1, 2)
    assert task.run_after >= before + dt.timedelta(minutes=2)
    when = timezone.now() + dt.timedelta(hours=1)
    task = options(run_at=when).enqueue(tasks.add, 1, 2)
    assert task.run_after == when
    assert options(delay=5).options(priority=3).priority == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": 1, "run_at": timezone.now()}, "not both"),
        ({"delay": -1}, "zero or more"),
        ({"delay": "soon"}, "seconds or a timedelta"),
        ({"run_at": dt.datetime(2030, 1, 1)}, "aware datetime"),
        ({"priority": "high"}, "priority must be an int"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": 0}, "timeout"),
        ({"queue": ""}, "queue"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        options(**kwargs)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda: None, "lambdas cannot be enqueued"),
        (functools.partial(module_level, 1), "partial"),
        (Holder().method, "bound method"),
        (Holder.static, "is a method"),
        (len, "not a Python function"),
        (Holder, "not a Python function"),
    ],
)
def test_unstorable_callables_are_rejected(fn: Any, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        enqueue(fn)
    assert not Task.objects.exists()


def test_nested_function_is_rejected() -> None:
    def inner() -> None: ...

    with pytest.raises(InvalidTask, match="inside another function"):
        enqueue(inner)


def test_function_that_does_not_import_back_is_rejected() -> None:
    def impostor() -> None: ...

    impostor.__qualname__ = "module_level"
    impostor.__module__ = __name__
    with pytest.raises(InvalidTask, match="does not import back"):
        enqueue(impostor)
    impostor.__module__ = "no.such.module"
    with pytest.raises(InvalidTask, match="does not import back"):
        enqueue(impostor)


def test_function_in_main_is_rejected() -> None:
    def main_fn() -> None: ...

    main_fn.__qualname__ = "main_fn"
    main_fn.__module__ = "__main__"
    with pytest.raises(InvalidTask, match="__main__"):
        enqueue(main_fn)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((Item(pk=1),), {}, r"args\[0\] is an Item.*pass its primary key"),
        ((), {"when": dt.date(2020, 1, 1)}, r"kwargs\['when'\] is a date.*isoformat"),
        ((Decimal("1.5"),), {}, "is a Decimal"),
        (({1: "a"},), {}, "keys must be strings"),
        (([b"x"],), {}, r"args\[0\]\[0\] is a bytes"),
        (({"s": {1}},), {}, "pass a list"),
        ((math.nan,), {}, "finite number"),
    ],
)
def test_non_json_arguments_are_rejected(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        enqueue(tasks.echo, *args, **kwargs)
    assert not Task.objects.exists()


def test_arguments_over_the_size_limit_are_rejected(settings: Any) -> None:
    settings.TASKQ_MAX_ARGS_BYTES = 100
    enqueue(tasks.echo, "x" * 50)
    with pytest.raises(InvalidTask, match="TASKQ_MAX_ARGS_BYTES"):
        enqueue(tasks.echo, "x" * 200)
    assert Task.objects.count() == 1


def test_tuples_arrive_as_lists() -> None:
    task = enqueue(tasks.echo, (1, 2), nested={"t": (3,)})
    assert task.args == [[1, 2]]
    assert Task.objects.get(pk=task.pk).kwargs == {"nested": {"t": [3]}}


def test_invalid_task_is_a_value_error_and_a_taskq_error() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        enqueue(lambda: None)
    with pytest.raises(TaskqError):
        enqueue(lambda: None)


def test_enqueued_signal_fires_with_the_row() -> None:
    seen: list[Task] = []

    def receiver(sender: Any, task: Task, **kwargs: Any) -> None:
        seen.append(task)

    taskq.signals.task_enqueued.connect(receiver)
    try:
        task = enqueue(tasks.add, 1, 1)
    finally:
        taskq.signals.task_enqueued.disconnect(receiver)
    assert seen == [task]


def test_pool_is_woken_only_when_the_transaction_commits(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        enqueue(tasks.add, 1, 1)
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                enqueue(tasks.add, 1, 1)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert Task.objects.count() == 1


def test_cancel_a_queued_task() -> None:
    task = enqueue(tasks.add, 1, 1)
    assert task.cancel()
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert task.finished_at is not None
    assert not task.cancel()
