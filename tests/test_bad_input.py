"""Every bad call to enqueue() gets InvalidTask with a way out, and nothing reaches the database."""

from __future__ import annotations

import math
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction

import taskq
from taskq import InvalidTask, enqueue, options, signing
from taskq.decorators import TaskDefaults
from taskq.exceptions import NotMigrated, TaskqError
from taskq.models import Status, Task
from taskq.testing import run_due
from taskq.validation import check_result, runnable
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def one(x: Any) -> Any:
    return x


def wrap(x: Any) -> list[Any]:
    return [x]


def numbers() -> Iterator[int]:
    yield 1


async def async_numbers() -> AsyncIterator[int]:
    yield 1


async def coroutine() -> None: ...


class Klass:
    def method(self) -> None: ...


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def nested_dicts(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


BAD_VALUES = [
    pytest.param(nested(1000), "nests lists and dicts", id="deep-recursion"),
    pytest.param(nested(32), "32 levels", id="json-depth-list"),
    pytest.param(nested_dicts(32), "32 levels", id="json-depth-dict"),
    pytest.param(10**4400, "more than 4300 digits", id="huge-int"),
    pytest.param(-(10**4400), "more than 4300 digits", id="huge-negative-int"),
    pytest.param("a\x00b", "NUL", id="nul"),
    pytest.param("\ud800", "lone surrogate", id="surrogate"),
    pytest.param(["ok", {"k": "x\x00"}], "NUL", id="nested-nul"),
    pytest.param({"k\x00": 1}, "key that contains a NUL", id="nul-key"),
    pytest.param({"\udfff": 1}, "key that contains a lone surrogate", id="surrogate-key"),
    pytest.param(math.inf, "finite number", id="inf"),
]


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_bad_positional_value_is_refused_and_nothing_is_stored(value: Any, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        enqueue(one, value)
    assert not Task.objects.exists()


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_bad_keyword_value_is_refused_and_nothing_is_stored(value: Any, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        enqueue(tasks.echo, key=value)
    assert not Task.objects.exists()


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_bad_return_value_is_refused_with_a_message(value: Any, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        check_result(value)


@pytest.mark.parametrize("key", ["a\x00", "\ud800"])
def test_bad_keyword_name_is_refused(key: str) -> None:
    with pytest.raises(InvalidTask, match="key that contains"):
        enqueue(tasks.echo, **{key: 1})
    assert not Task.objects.exists()


def test_the_digit_limit_holds_even_when_python_lifts_its_own() -> None:
    # A worker process reads with the default limit, whatever this process set.
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        with pytest.raises(InvalidTask, match="more than 4300 digits"):
            enqueue(one, 10**4300)
    finally:
        sys.set_int_max_str_digits(before)
    assert not Task.objects.exists()


def test_a_path_longer_than_its_column_is_refused() -> None:
    name = "tests." + "m" * 250
    module = types.ModuleType(name)

    def fn() -> None: ...

    fn.__module__, fn.__qualname__ = name, "fn"
    module.fn = fn  # type: ignore[attr-defined]  # a module built at run time
    sys.modules[name] = module
    try:
        with pytest.raises(InvalidTask, match="over the 255 the path column holds"):
            enqueue(fn)
    finally:
        del sys.modules[name]
    assert not Task.objects.exists()


def test_deepest_nesting_every_backend_stores_round_trips() -> None:
    # 30 lists inside the args list (31 in the column) and 31 inside a result are the most
    # MariaDB accepts; the same values must be stored and read back everywhere.
    task = enqueue(tasks.echo, nested(30))
    assert Task.objects.get(pk=task.pk).args == [nested(30)]
    check_result(nested(31))
    with pytest.raises(InvalidTask, match="32 levels"):
        enqueue(tasks.echo, nested(31))
    [ran] = run_due()
    assert ran.status == Status.FAILED  # echo wraps its args in one more level
    assert "32 levels" in ran.error


def test_deepest_result_is_stored() -> None:
    enqueue(wrap, nested(30))
    [ran] = run_due()
    assert ran.status == Status.SUCCEEDED, ran.error
    assert Task.objects.get(pk=ran.pk).result == nested(31)


def test_a_self_containing_list_is_refused_not_a_recursion_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidTask, match="32 levels"):
        enqueue(one, loop)
    with pytest.raises(InvalidTask, match="32 levels"):
        check_result(loop)


def test_the_grammar_of_a_type_name_follows_its_first_letter() -> None:
    class ApiResult: ...

    with pytest.raises(InvalidTask, match=r"is an ApiResult, which is not JSON"):
        check_result(ApiResult())
    with pytest.raises(InvalidTask, match=r"is a Klass, which is not JSON"):
        check_result(Klass())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: enqueue(one, 1, 2, 3), "too many positional", id="too-many"),
        pytest.param(lambda: enqueue(one), "missing a required argument", id="missing"),
        pytest.param(lambda: enqueue(one, 1, y=2), "unexpected keyword", id="unknown-keyword"),
        pytest.param(lambda: enqueue(one, 1, x=2), "multiple values", id="twice"),
        pytest.param(lambda: options(queue="q").enqueue(tasks.add, 1), "missing", id="via-options"),
    ],
)
def test_a_call_that_does_not_fit_the_signature_is_refused(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=f"{message}.*pass the arguments its definition accepts"):
        call()
    assert not Task.objects.exists()


@pytest.mark.parametrize("fn", [numbers, async_numbers])
def test_generator_functions_are_refused(fn: Any) -> None:
    with pytest.raises(InvalidTask, match=r"generator function.*plain function"):
        enqueue(fn)
    assert not Task.objects.exists()


def test_coroutine_functions_are_still_accepted() -> None:
    assert enqueue(coroutine).path == f"{__name__}.coroutine"


BAD_OPTIONS = [
    pytest.param({"delay": math.inf}, "delay must be a finite", id="delay-inf"),
    pytest.param({"delay": math.nan}, "delay must be a finite", id="delay-nan"),
    pytest.param({"delay": 1e12}, "past the year 9999", id="delay-overflow"),
    pytest.param({"delay": timedelta.max}, "past the year 9999", id="delay-timedelta-max"),
    pytest.param({"delay": -1}, "delay must be a finite", id="delay-negative"),
    pytest.param({"delay": 10**400}, "delay must be a finite", id="delay-huge-int"),
    pytest.param({"queue": "q" * 65}, "at most 64 characters", id="queue-long"),
    pytest.param({"queue": "a\x00"}, "NUL", id="queue-nul"),
    pytest.param({"queue": "\ud800"}, "lone surrogate", id="queue-surrogate"),
    pytest.param({"priority": 2**31}, "priority must be an int from", id="priority-high"),
    pytest.param({"priority": -(2**31) - 1}, "priority must be an int from", id="priority-low"),
    pytest.param({"priority": 1.5}, "priority must be an int from", id="priority-float"),
    pytest.param({"max_attempts": 2**31}, "max_attempts must be an int from 1", id="attempts-high"),
    pytest.param({"max_attempts": 0}, "max_attempts must be an int from 1", id="attempts-zero"),
    pytest.param({"max_attempts": -1}, "max_attempts must be an int from 1", id="attempts-negative"),
    pytest.param({"timeout": math.inf}, "timeout must be a finite", id="timeout-inf"),
    pytest.param({"timeout": math.nan}, "timeout must be a finite", id="timeout-nan"),
    pytest.param({"timeout": -1}, "timeout must be a finite", id="timeout-negative"),
    pytest.param({"timeout": 0}, "timeout must be a finite", id="timeout-zero"),
    pytest.param({"timeout": 1e300}, "past the year 9999", id="timeout-huge"),
    pytest.param({"timeout": 10**400}, "timeout must be a finite", id="timeout-huge-int"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_OPTIONS)
def test_bad_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        options(**kwargs).enqueue(tasks.add, 1, 2)
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [p for p in BAD_OPTIONS if "delay" not in p.values[0]],  # type: ignore[operator]  # values is a tuple
)
def test_bad_decorator_defaults_are_refused_when_decorating(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        taskq.task(**kwargs)
    with pytest.raises(InvalidTask, match=message):
        TaskDefaults(**kwargs)


def test_the_widest_options_every_backend_holds_are_stored() -> None:
    task = options(
        queue="q" * 64, priority=2**31 - 1, max_attempts=2**31 - 1, timeout=86400 * 365, delay=86400 * 365
    ).enqueue(tasks.add, 1, 2)
    row = Task.objects.get(pk=task.pk)
    assert (row.queue, row.priority, row.max_attempts) == ("q" * 64, 2**31 - 1, 2**31 - 1)
    task = options(priority=-(2**31)).enqueue(tasks.add, 1, 2)
    assert Task.objects.get(pk=task.pk).priority == -(2**31)


# Numbers that must verify after a trip through every backend's JSON column.
ROUND_TRIP = [
    2**53 - 1,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 - 1,
    2**64,
    2**64 + 1,
    10**4299,
    -(10**4299),
    1e23,
    -1e23,
    float(2**60),
    float(2**53 + 2),
    0.1,
    -0.0,
    0.0,
    1.0,
    123456789.0,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e16,
    1.5e-7,
    2.5,
    1 / 3,
]


def test_numbers_verify_after_the_database_gives_them_back() -> None:
    tasks_ = [enqueue(tasks.echo, value, k=[value]) for value in ROUND_TRIP]
    for task, value in zip(tasks_, ROUND_TRIP, strict=True):
        row = Task.objects.get(pk=task.pk)
        assert signing.verify(row.path, row.args, row.kwargs, row.uid, row.signature), (value, row.args)
        assert _same_number(row.args[0], value)


@pytest.mark.parametrize("value", [1e23, float(2**60), 1.7976931348623157e308, 2**64 + 1, 10**4299])
def test_a_large_number_is_not_refused_as_tampered(value: Any) -> None:
    enqueue(one, value)
    [ran] = run_due()
    assert ran.status == Status.SUCCEEDED, ran.error
    assert _same_number(ran.result, value)


def _same_number(back: Any, sent: Any) -> bool:
    # jsonb gives an integral float back as the int it spells (1e23 as 10**23), which is
    # the same float again once converted.
    return bool(back == sent if isinstance(sent, int) else float(back) == sent)


# runnable() --------------------------------------------------------------------------


def test_runnable_returns_a_module_level_function() -> None:
    assert runnable("tests.testapp.tasks.add") is tasks.add
    assert runnable(f"{__name__}.coroutine") is coroutine


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.testapp.tasks.no_such_function", "cannot be imported"),
        ("no.such.module.fn", "cannot be imported"),
        ("nodots", "cannot be imported"),
        (f"{__name__}.Klass", "not a Python function"),
        (f"{__name__}.Klass.method", "cannot be imported"),
        ("os.getcwd", "not a Python function"),
        ("os.path.join", "is another name for"),
        (f"{__name__}.numbers", "generator function"),
        (f"{__name__}.async_numbers", "generator function"),
        (f"{__name__}.LAMBDA", "lambdas"),
        (f"{__name__}.INNER", "inside another function"),
        (f"{__name__}.ALIAS", "is another name for"),
        ("tests.testapp.tasks.EVENTS", "not a Python function"),
    ],
)
def test_runnable_refuses_what_enqueue_would_refuse(path: str, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        runnable(path)


def _make_inner() -> Callable[[], None]:
    def inner() -> None: ...

    return inner


LAMBDA = lambda: None  # noqa: E731 - a lambda is what runnable() must refuse
INNER = _make_inner()
ALIAS = one


# Not migrated ------------------------------------------------------------------------


@pytest.fixture
def no_task_table(transactional_db: None) -> Iterator[None]:
    with connection.schema_editor() as editor:
        editor.delete_model(Task)
    try:
        yield
    finally:
        with connection.schema_editor() as editor:
            editor.create_model(Task)


def test_enqueue_before_migrate_says_to_run_migrate(no_task_table: None) -> None:
    with pytest.raises(NotMigrated, match=r"taskq_task table does not exist.*run manage.py migrate"):
        enqueue(tasks.add, 1, 2)
    with pytest.raises(TaskqError, match=r"run manage\.py migrate"), transaction.atomic():
        enqueue(tasks.add, 1, 2)
    with pytest.raises(RuntimeError):
        enqueue(tasks.add, 1, 2)
