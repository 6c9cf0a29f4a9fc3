"""TaskqBackend under Django's Tasks API: the ImmediateBackend contract, held with a real pool."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.utils import timezone

import taskq
from taskq import signals as taskq_signals
from taskq.backends import RUN_PATH, InvalidTask, TaskqBackend, _remember_running, run_django_task, to_result
from taskq.exceptions import InvalidTask as TaskqInvalidTask
from taskq.exceptions import TaskTimeout
from taskq.models import Status, Task
from taskq.pool import Pool
from taskq.signals import task_finished as taskq_task_finished
from taskq.testing import run_due
from tests.helpers import subprocess_env, wait_until
from tests.processes import ROOT
from tests.testapp import dtasks
from tests.testapp import tasks as plain_tasks
from tests.testapp.dtasks import TaskResultDoesNotExist, TaskResultStatus

TASKS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "taskq.backends.TaskqBackend", "QUEUES": ["default", "emails"]},
    "once": {"BACKEND": "taskq.backends.TaskqBackend", "OPTIONS": {"max_attempts": 1}},
}


@pytest.fixture(autouse=True)
def _taskq_backend(settings: Any) -> None:
    settings.TASKS = TASKS


def backend(alias: str = "default") -> TaskqBackend:
    found = dtasks.task_backends[alias]
    assert isinstance(found, TaskqBackend)
    return found


def finished(result: Any, timeout: float = 20.0) -> Any:
    """Refresh ``result`` until its task has finished, and return it."""

    def done() -> bool:
        result.refresh()
        return bool(result.is_finished)

    wait_until(done, timeout=timeout)
    return result


@pytest.fixture
def pool(make_pool: Callable[..., Pool]) -> Pool:
    return make_pool(workers=2)


def test_the_backend_advertises_every_capability_and_keeps_its_options() -> None:
    assert backend().alias == "default"
    assert backend().queues == {"default", "emails"}
    assert backend("once").options == {"max_attempts": 1}
    for flag in ("supports_defer", "supports_async_task", "supports_get_result", "supports_priority"):
        assert getattr(TaskqBackend, flag) is True


@pytest.mark.django_db
def test_enqueue_writes_one_row_and_returns_a_ready_result(django_assert_num_queries: Any) -> None:
    seen: list[Any] = []

    def listen(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append((sender, task_result))

    dtasks.task_enqueued.connect(listen)
    try:
        with django_assert_num_queries(1):
            result = dtasks.echo.using(priority=7, queue_name="emails").enqueue(1, (2, 3), two={"x": None})
    finally:
        dtasks.task_enqueued.disconnect(listen)
    row = Task.objects.get()
    assert result.id == str(row.pk)
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.args == [1, [2, 3]]
    assert result.kwargs == {"two": {"x": None}}
    assert result.backend == "default"
    assert result.enqueued_at == row.enqueued_at
    assert result.started_at is None
    assert result.finished_at is None
    assert result.last_attempted_at is None
    assert (result.errors, result.worker_ids, result.attempts) == ([], [], 0)
    assert result.task.func is dtasks.echo.func
    with pytest.raises(ValueError, match="not finished"):
        result.return_value  # noqa: B018
    assert row.path == RUN_PATH
    assert row.args == ["tests.testapp.dtasks.echo", "default", False, [1, [2, 3]], {"two": {"x": None}}]
    assert (row.queue, row.priority, row.status) == ("emails", 7, Status.QUEUED)
    assert seen == [(TaskqBackend, result)]


def test_sync_and_async_tasks_run_to_successful_in_a_real_pool(pool: Pool) -> None:
    for task in (dtasks.noop, dtasks.noop_async):
        result = finished(task.enqueue(1, two=3))
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value is None
        assert result.task == task
        assert (result.args, result.kwargs) == ([1], {"two": 3})
        assert result.attempts == 1
        assert result.worker_ids == [pool.name]
        assert result.errors == []
        assert result.enqueued_at <= result.started_at <= result.finished_at
        assert result.last_attempted_at == result.started_at
    for answer in (dtasks.meaning_of_life, dtasks.meaning_of_life_async):
        assert finished(answer.enqueue()).return_value == 42


def test_get_result_and_aget_result_read_the_row_afresh(pool: Pool) -> None:
    result = dtasks.add.enqueue(40, 2)
    wait_until(lambda: Task.objects.filter(pk=int(result.id), status=Status.SUCCEEDED).exists())
    fetched = backend().get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 42
    assert fetched.task == dtasks.add
    assert dtasks.add.get_result(result.id).return_value == 42
    fetched_async = async_to_sync(backend().aget_result)(result.id)
    assert fetched_async.return_value == 42
    assert fetched_async.finished_at == fetched.finished_at
    # The result enqueue() returned is stale until refreshed.
    assert str(result.status) == "READY"
    async_to_sync(result.arefresh)()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_aenqueue_stores_the_row_and_runs_it(pool: Pool) -> None:
    result = async_to_sync(dtasks.meaning_of_life_async.aenqueue)()
    assert result.status == TaskResultStatus.READY
    assert finished(result).return_value == 42


@pytest.mark.django_db
@pytest.mark.parametrize("result_id", ["999999", "abc", "", "-1", "1.5", "9" * 40, "\u0661", "\u00b2"])
def test_an_unknown_id_raises_task_result_does_not_exist(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result(result_id)


@pytest.mark.django_db
def test_a_plain_taskq_row_or_another_alias_is_not_a_result() -> None:
    plain = Task.objects.create(path="tests.testapp.tasks.add", args=[1, 2])
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result(str(plain.pk))
    result = dtasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultDoesNotExist):
        backend("once").get_result(result.id)


def test_a_failing_task_reports_its_exception_class_and_traceback(pool: Pool) -> None:
    cases = [
        (dtasks.fail_value_error, ValueError, "ValueError: This task failed due to ValueError\n"),
        (dtasks.fail_boom, dtasks.Boom, "tests.testapp.dtasks.Boom: a\nmessage over two lines\n"),
    ]
    for task, exception, ending in cases:
        result = finished(task.using(backend="once").enqueue())
        assert result.status == TaskResultStatus.FAILED
        with pytest.raises(ValueError, match="Task failed"):
            result.return_value  # noqa: B018
        assert result.enqueued_at <= result.started_at <= result.finished_at
        assert result.attempts == 1
        assert len(result.errors) == 1
        assert result.errors[0].exception_class is exception
        assert result.errors[0].traceback.endswith(ending), result.errors[0].traceback


def test_a_return_value_json_cannot_hold_fails_the_task(pool: Pool) -> None:
    result = finished(dtasks.complex_return_value.enqueue())
    assert result.status == TaskResultStatus.FAILED
    # Whichever taskq error names it, the attempt fails for good.
    assert result.errors[-1].exception_class.__module__ == "taskq.exceptions"
    assert result.attempts == 1
    assert "the return value is a set" in result.errors[-1].traceback


def test_retries_come_from_options_and_every_attempt_counts(pool: Pool, settings: Any) -> None:
    settings.TASKS = {"default": {**TASKS["default"], "OPTIONS": {"max_attempts": 3}}}
    result = finished(dtasks.fail_until_third_attempt.enqueue())
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert result.worker_ids == [pool.name] * 3
    assert all(error.exception_class is ValueError for error in result.errors)
    # Each failed attempt is an error, from Task.history.
    assert len(result.errors) == 2
    assert result.errors[-1].traceback.endswith("ValueError: attempt 2 fails\n")


@pytest.mark.django_db
def test_the_default_max_attempts_and_timeout_come_from_options(settings: Any) -> None:
    settings.TASKS = {"default": {**TASKS["default"], "OPTIONS": {"max_attempts": 5, "timeout": 2.5}}}
    result = dtasks.noop.enqueue()
    row = Task.objects.get(pk=int(result.id))
    assert (row.max_attempts, row.timeout) == (5, 2.5)


def test_a_task_that_takes_context_gets_its_result_and_attempt(pool: Pool) -> None:
    result = finished(dtasks.context_info.enqueue("k"))
    assert result.return_value == {
        "id": result.id,
        "attempt": 1,
        "status": "RUNNING",
        "args": ["k"],
        "key": "k",
    }


@pytest.mark.django_db(transaction=True)
def test_higher_priority_runs_first() -> None:
    for priority in (-100, 0, 100, 5):
        dtasks.record.using(priority=priority).enqueue(str(priority))
    run_due()
    assert plain_tasks.SEEN["order"] == ["100", "5", "0", "-100"]


def test_run_after_holds_a_task_back_until_its_time(pool: Pool) -> None:
    run_after = timezone.now() + timedelta(seconds=1.5)
    deferred = dtasks.record.using(run_after=run_after).enqueue("late")
    now = finished(dtasks.record.enqueue("now"))
    assert Task.objects.get(pk=int(deferred.id)).run_after == run_after
    deferred.refresh()
    assert deferred.status == TaskResultStatus.READY
    finished(deferred)
    assert deferred.started_at is not None
    assert deferred.started_at >= run_after
    assert plain_tasks.SEEN["order"] == ["now", "late"]
    assert now.status == TaskResultStatus.SUCCESSFUL


@pytest.mark.django_db
def test_a_queue_outside_queues_is_refused_and_a_listed_one_is_stored() -> None:
    with pytest.raises(dtasks.DjangoInvalidTask, match="Queue 'nope' is not valid for backend"):
        dtasks.noop.using(queue_name="nope").enqueue()
    with pytest.raises(TaskqInvalidTask, match="Queue 'nope'"):
        dtasks.noop.using(queue_name="nope").enqueue()
    result = dtasks.noop.using(queue_name="emails").enqueue()
    assert Task.objects.get(pk=int(result.id)).queue == "emails"
    assert Task.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({1, 2},), {}, r"args\[0\] is a set, which is not JSON: pass a list"),
        (
            (1,),
            {"c": 3},
            r"the arguments do not fit tests.testapp.dtasks.add\(a: .*missing a required argument: 'b'",
        ),
        (("x" * 70000, 1), {}, "over the TASKQ_MAX_ARGS_BYTES limit"),
    ],
)
def test_taskq_checks_arguments_with_its_own_messages(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTask, match=message) as caught:
        dtasks.add.enqueue(*args, **kwargs)
    assert isinstance(caught.value, dtasks.DjangoInvalidTask)
    assert isinstance(caught.value, TaskqInvalidTask)
    assert not Task.objects.exists()


def test_a_task_defined_where_no_worker_can_import_it_is_refused(db: None) -> None:
    def local() -> None:
        return None

    with pytest.raises(dtasks.DjangoInvalidTask, match="module level"):
        dtasks.DjangoTask(func=local)
    shadow = dtasks.DjangoTask(func=plain_tasks.add)
    with pytest.raises(InvalidTask, match="does not import back"):
        shadow.enqueue(1, 2)


def test_django_signals_carry_the_result_at_each_step(pool: Pool) -> None:
    seen: list[tuple[str, Any, str, str]] = []
    taskq_rows: list[int] = []

    def listener(name: str) -> Callable[..., None]:
        def listen(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((name, sender, task_result.id, str(task_result.status)))

        return listen

    def taskq_listen(sender: Any, task: Task, **kwargs: Any) -> None:
        taskq_rows.append(task.pk)

    listeners = {name: listener(name) for name in ("enqueued", "started", "finished")}
    dtasks.task_enqueued.connect(listeners["enqueued"])
    dtasks.task_started.connect(listeners["started"])
    dtasks.task_finished.connect(listeners["finished"])
    taskq_task_finished.connect(taskq_listen)
    try:
        ok = finished(dtasks.add.enqueue(1, 2))
        bad = finished(dtasks.fail_value_error.using(backend="once").enqueue())
        wait_until(lambda: len(seen) == 6 and len(taskq_rows) == 2)
    finally:
        dtasks.task_enqueued.disconnect(listeners["enqueued"])
        dtasks.task_started.disconnect(listeners["started"])
        dtasks.task_finished.disconnect(listeners["finished"])
        taskq_task_finished.disconnect(taskq_listen)
    assert seen == [
        ("enqueued", TaskqBackend, ok.id, "READY"),
        ("started", TaskqBackend, ok.id, "RUNNING"),
        ("finished", TaskqBackend, ok.id, "SUCCESSFUL"),
        ("enqueued", TaskqBackend, bad.id, "READY"),
        ("started", TaskqBackend, bad.id, "RUNNING"),
        ("finished", TaskqBackend, bad.id, "FAILED"),
    ]
    assert taskq_rows == [int(ok.id), int(bad.id)]


def test_a_failing_signal_receiver_does_not_stop_the_runner(pool: Pool) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    dtasks.task_started.connect(broken)
    dtasks.task_finished.connect(broken)
    try:
        result = finished(dtasks.add.enqueue(2, 3))
    finally:
        dtasks.task_started.disconnect(broken)
        dtasks.task_finished.disconnect(broken)
    assert result.return_value == 5


@pytest.mark.django_db
def test_a_cancelled_task_reads_as_failed() -> None:
    result = dtasks.noop.enqueue()
    assert Task.objects.get(pk=int(result.id)).cancel()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors == []


def test_run_django_task_outside_a_runner_is_refused() -> None:
    with pytest.raises(TaskqInvalidTask, match="only inside a taskq runner"):
        run_django_task("tests.testapp.dtasks.noop", "default", False, [], {})


@pytest.mark.django_db
def test_check_accepts_a_good_configuration() -> None:
    assert backend().check() == []
    assert backend("once").check() == []


@pytest.mark.parametrize(
    ("options", "expected_id", "words"),
    [
        ({"max_attempts": 0}, "taskq.E103", "is invalid: max_attempts must be"),
        ({"timeout": -1}, "taskq.E103", "is invalid: timeout must be"),
        ({"retries": 3}, "taskq.E102", "unknown keys ['retries']"),
        ("max_attempts=3", "taskq.E102", "it must be a dict"),
    ],
)
def test_check_reports_bad_options(settings: Any, options: Any, expected_id: str, words: str) -> None:
    settings.TASKS = {"default": {"BACKEND": "taskq.backends.TaskqBackend", "OPTIONS": options}}
    messages = backend().check()
    assert [m.id for m in messages] == [expected_id]
    assert words in messages[0].msg


def test_check_warns_of_queues_no_pool_of_this_process_serves(settings: Any) -> None:
    settings.TASKQ_QUEUES = ["default"]
    messages = backend().check()
    assert [m.id for m in messages] == ["taskq.W101"]
    assert "lists ['emails'], which TASKQ_QUEUES leaves out" in messages[0].msg
    settings.TASKQ_QUEUES = ["default", "emails", "other"]
    assert backend().check() == []


def test_check_reports_taskq_missing_from_installed_apps() -> None:
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"]):
        messages = backend().check()
    assert [m.id for m in messages] == ["taskq.E101"]
    assert "'taskq' is not in INSTALLED_APPS" in messages[0].msg


@pytest.fixture
def committed_result(transactional_db: None) -> str:
    result = dtasks.add.enqueue(20, 22)
    assert [t.path for t in run_due()] == [RUN_PATH]
    return result.id


def test_get_result_from_another_process_sees_successful_and_the_value(committed_result: str) -> None:
    script = (
        "import json; from taskq.backends import TaskqBackend; "
        "from tests.testapp.dtasks import task_backends; "
        f"r = task_backends['default'].get_result({committed_result!r}); "
        "print(json.dumps({'status': str(r.status), 'value': r.return_value, 'attempts': r.attempts, "
        "'task': r.task.module_path}))"
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", script],
        cwd=ROOT,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="tests.testapp.tasks_settings"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "status": "SUCCESSFUL",
        "value": 42,
        "attempts": 1,
        "task": "tests.testapp.dtasks.add",
    }


def stored_row(status: str, **fields: Any) -> Task:
    """An unsaved row as TaskqBackend writes it, for describing without a pool."""
    fields.setdefault("args", ["tests.testapp.dtasks.add", "default", False, [1, 2], {}])
    return Task(pk=7, path=RUN_PATH, status=status, enqueued_at=timezone.now(), **fields)


def entry(attempt: int, outcome: str, exception: str = "", worker: str = "pool-a") -> dict[str, Any]:
    return {
        "attempt": attempt,
        "worker": worker,
        "started_at": f"2026-12-06T10:00:0{attempt}+00:00",
        "finished_at": f"2026-12-06T10:00:0{attempt}.5+00:00",
        "outcome": outcome,
        "error": f"{exception.rsplit('.', 1)[-1]}: attempt {attempt}" if exception else "",
        "exception": exception,
        "traceback": f"Traceback ...\n{exception}: attempt {attempt}\n" if exception else "",
    }


def test_history_entries_become_errors_and_worker_ids() -> None:
    row = stored_row(
        "running",
        attempts=4,
        worker="pool-c",
        started_at=timezone.now(),
        error="ValueError: attempt 3",
        history=[
            entry(1, "retried", "builtins.ValueError", "pool-a"),
            entry(2, "timed_out", "taskq.exceptions.TaskTimeout", "pool-b"),
            entry(3, "lost", "", "pool-a"),
        ],
    )
    result = to_result(row)
    assert result.status == TaskResultStatus.RUNNING
    assert result.worker_ids == ["pool-a", "pool-b", "pool-a", "pool-c"]
    assert result.attempts == 4
    assert [e.exception_class_path for e in result.errors] == [
        "builtins.ValueError",
        "taskq.exceptions.TaskTimeout",
        "builtins.Exception",
    ]
    assert result.errors[0].traceback.endswith("builtins.ValueError: attempt 1\n")
    assert result.started_at == datetime(2026, 12, 6, 10, 0, 1, tzinfo=UTC)
    assert result.last_attempted_at == row.started_at


def test_attempts_the_bounded_history_dropped_keep_their_place() -> None:
    row = stored_row(
        "running",
        attempts=4,
        worker="pool-c",
        error="ValueError: attempt 3",
        history=[entry(1, "retried", "builtins.ValueError", "pool-a"), entry(3, "retried", "", "pool-b")],
    )
    result = to_result(row)
    assert result.worker_ids == ["pool-a", "", "pool-b", "pool-c"]
    assert len(result.errors) == 2


def test_a_success_after_history_has_only_the_failed_attempts_as_errors() -> None:
    row = stored_row(
        "succeeded",
        attempts=2,
        worker="pool-b",
        result=3,
        error="ValueError: attempt 1",
        history=[entry(1, "retried", "builtins.ValueError"), entry(2, "succeeded", worker="pool-b")],
    )
    result = to_result(row)
    assert result.return_value == 3
    assert [e.exception_class for e in result.errors] == [ValueError]
    assert result.worker_ids == ["pool-a", "pool-b"]


def test_a_runner_without_the_handed_row_reads_it(transactional_db: None) -> None:
    # As in a worker process that imports taskq.backends only when its first such task runs.
    taskq_signals.task_started.disconnect(dispatch_uid="taskq.backends.started")
    try:
        result = dtasks.context_info.enqueue("k")
        run_due()
    finally:
        taskq_signals.task_started.connect(_remember_running, dispatch_uid="taskq.backends.started")
    result.refresh()
    assert result.return_value == {
        "id": result.id,
        "attempt": 1,
        "status": "RUNNING",
        "args": ["k"],
        "key": "k",
    }


def test_a_row_whose_path_is_not_a_django_task_fails_and_is_logged(
    transactional_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    row = taskq.enqueue(run_django_task, "tests.testapp.tasks.add", "default", False, [1, 2], {})
    [ran] = run_due()
    assert ran.status == Status.FAILED
    assert "is not a task defined with @task" in ran.error
    assert "signal=task_finished" in caplog.text
    with pytest.raises(TaskqInvalidTask, match="is not a task defined with @task"):
        backend().get_result(str(row.pk))


def renamed() -> None:
    return None


renamed.__qualname__ = "not_here"


@pytest.mark.django_db
def test_a_task_whose_path_does_not_import_is_refused() -> None:
    with pytest.raises(InvalidTask, match=r"tests\.test_backends\.not_here does not import back"):
        dtasks.DjangoTask(func=renamed).enqueue()


def test_plain_taskq_tasks_run_beside_django_ones_and_send_no_django_signal(pool: Pool) -> None:
    seen: list[Any] = []
    done: list[int] = []

    def listen(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(task_result.id)

    def settled(sender: Any, task: Task, **kwargs: Any) -> None:
        # Connected after the backend's own receiver, so this runs once the
        # Django signal for the same task has (or has not) been sent.
        done.append(task.pk)

    dtasks.task_finished.connect(listen)
    taskq_task_finished.connect(settled)
    try:
        plain = taskq.enqueue(plain_tasks.add, 1, 2)
        django = finished(dtasks.add.enqueue(3, 4))
        # The outcome is committed before the signals go out, so wait for
        # the signals rather than for the rows.
        wait_until(lambda: {plain.pk, int(django.id)} <= set(done))
    finally:
        dtasks.task_finished.disconnect(listen)
        taskq_task_finished.disconnect(settled)
    assert seen == [django.id]
    assert django.return_value == 7


def test_under_taskq_immediate_enqueue_returns_the_finished_result(
    transactional_db: None, settings: Any
) -> None:
    settings.TASKQ_IMMEDIATE = True
    seen: list[tuple[str, str]] = []

    def listener(name: str) -> Callable[..., None]:
        def listen(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((name, str(task_result.status)))

        return listen

    listeners = {name: listener(name) for name in ("enqueued", "started", "finished")}
    dtasks.task_enqueued.connect(listeners["enqueued"])
    dtasks.task_started.connect(listeners["started"])
    dtasks.task_finished.connect(listeners["finished"])
    try:
        result = dtasks.add.enqueue(1, 2)
    finally:
        dtasks.task_enqueued.disconnect(listeners["enqueued"])
        dtasks.task_started.disconnect(listeners["started"])
        dtasks.task_finished.disconnect(listeners["finished"])
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 1
    assert seen == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]


@pytest.mark.django_db
def test_manage_py_check_reports_the_backends_messages(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "taskq.backends.TaskqBackend", "OPTIONS": {"retries": 1}}}
    with pytest.raises(SystemCheckError, match=r"taskq\.E102"):
        call_command("check")


def test_a_timeout_from_options_fails_a_task_that_runs_too_long(pool: Pool, settings: Any) -> None:
    settings.TASKS = {"default": {**TASKS["default"], "OPTIONS": {"max_attempts": 1, "timeout": 0.3}}}
    result = dtasks.wait_for.enqueue("held", 15)
    try:
        finished(result)
    finally:
        plain_tasks.event("held").set()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class is TaskTimeout
    assert result.errors[-1].traceback == "TaskTimeout: ran longer than its timeout of 0.3s"


def test_a_task_whose_pool_died_is_recovered_and_runs_again(transactional_db: None) -> None:
    result = dtasks.add.enqueue(2, 2)
    # A pool claims it and dies: nobody renews the lease, so it lapses.
    [claimed] = Task.objects.claim("dead-pool", limit=1, lease=0.05)
    assert str(claimed.pk) == result.id
    result.refresh()
    assert (str(result.status), result.worker_ids) == ("RUNNING", ["dead-pool"])
    wait_until(lambda: Task.objects.recover_expired() == 1, timeout=10)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert [e.exception_class_path for e in result.errors] == ["taskq.exceptions.WorkerLost"]
    run_due()
    result.refresh()
    assert str(result.status) == "SUCCESSFUL"
    assert result.return_value == 4
    assert result.worker_ids == ["dead-pool", "run_due"]
    assert [e.exception_class_path for e in result.errors] == ["taskq.exceptions.WorkerLost"]


def test_without_either_tasks_api_the_import_says_what_to_install() -> None:
    script = (
        "import sys; sys.modules['django.tasks'] = sys.modules['django_tasks'] = None; "
        "import django; from django.conf import settings; settings.configure(); django.setup(); "
        "import taskq, taskq.enqueue; import taskq.backends"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert 'install the backport with pip install "django-taskq[tasks]"' in proc.stderr
