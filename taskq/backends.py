"""taskq as a backend for Django's Tasks API: django.tasks on Django 6, the django-tasks backport on 5.2.

``TASKS = {"default": {"BACKEND": "taskq.backends.TaskqBackend"}}`` makes ``@task`` functions run
in taskq's pools. Each ``.enqueue()`` stores one ordinary taskq row whose path is
``taskq.backends.run_django_task`` and whose arguments are, in order, the ``@task``'s dotted
path, the backend alias, whether it takes a context, and the caller's args and kwargs. The
worker runs that function like any other task, and it calls the real one, so retries,
timeouts, leases and cancel apply unchanged, and the admin and ``taskq_status`` show the rows.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core import checks
from django.dispatch import receiver
from django.utils.module_loading import import_string

from taskq import signals as taskq_signals
from taskq.conf import settings
from taskq.context import current_task
from taskq.decorators import TaskDefaults
from taskq.enqueue import Options
from taskq.exceptions import InvalidTask as TaskqInvalidTask
from taskq.validation import clean_arguments

if TYPE_CHECKING:
    # Typed against the backport, whose API matches django.tasks name for name.
    from django_tasks import TaskContext, TaskResult, TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task as DjangoTask
    from django_tasks.base import TaskError
    from django_tasks.exceptions import InvalidTaskError as DjangoInvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started

    from taskq.models import Task
else:
    try:
        from django.tasks import TaskContext, TaskResult, TaskResultStatus
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task as DjangoTask
        from django.tasks.base import TaskError
        from django.tasks.exceptions import InvalidTask as DjangoInvalidTask
        from django.tasks.exceptions import TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
    except ImportError:
        try:
            # Registers the backport's system check, which runs each backend's check(), even
            # when "django_tasks" is not in INSTALLED_APPS; django.tasks registers its own.
            import django_tasks.checks  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "taskq.backends needs Django's Tasks API: upgrade to Django 6, or on Django 5.2 "
                'install the backport with pip install "django-taskq[tasks]".'
            ) from exc
        from django_tasks import TaskContext, TaskResult, TaskResultStatus
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task as DjangoTask
        from django_tasks.base import TaskError
        from django_tasks.exceptions import InvalidTaskError as DjangoInvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started

__all__ = ["InvalidTask", "TaskqBackend", "run_django_task"]

logger = logging.getLogger("taskq")

RUN_PATH = "taskq.backends.run_django_task"
# The OPTIONS a backend accepts: per-task taskq settings that Django's API has no word for.
OPTION_NAMES = ("max_attempts", "timeout")
_STATUSES = {
    "queued": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    # Django has no cancelled state; a cancelled task did not run to success.
    "cancelled": TaskResultStatus.FAILED,
}
_ERROR_OUTCOMES = ("failed", "retried", "timed_out", "lost")
# Exceptions whose traceback is empty are taskq's own, named in the error's first word.
# The backend class and task being enqueued, for the receiver of taskq's task_enqueued.
_enqueuing: ContextVar[tuple[type[TaskqBackend], DjangoTask[Any, Any]] | None] = ContextVar(
    "taskq_backends_enqueuing", default=None
)
# The row a runner is running, handed from taskq's task_started to run_django_task.
_running: ContextVar[Task | None] = ContextVar("taskq_backends_running", default=None)


class InvalidTask(DjangoInvalidTask, TaskqInvalidTask):
    """A task or its arguments cannot be enqueued; catch it as Django's or as taskq's InvalidTask."""


class TaskqBackend(BaseTaskBackend):
    """Store Django tasks as taskq rows and run them in taskq's pools."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: DjangoTask[Any, Any]) -> None:
        """Raise InvalidTask if this backend cannot run ``task``."""
        try:
            super().validate_task(task)
        except DjangoInvalidTask as exc:
            raise InvalidTask(*exc.args) from exc

    def enqueue(self, task: DjangoTask[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any]:
        """Insert one taskq row for this call, in the caller's transaction, and return its result."""
        self.validate_task(task)
        try:
            _check_importable(task)
            clean_args, clean_kwargs = clean_arguments(tuple(args), dict(kwargs))
            _check_binds(task, clean_args, clean_kwargs)
            options = Options(
                queue=task.queue_name,
                # Django's -100..100 and taskq's priorities both run higher numbers first.
                priority=task.priority,
                run_at=task.run_after,
                max_attempts=self.options.get("max_attempts"),
                timeout=self.options.get("timeout"),
            )
            token = _enqueuing.set((type(self), task))
            try:
                row = options.enqueue(
                    run_django_task,
                    task.module_path,
                    self.alias,
                    task.takes_context,
                    clean_args,
                    clean_kwargs,
                )
            finally:
                _enqueuing.reset(token)
        except TaskqInvalidTask as exc:
            raise InvalidTask(*exc.args) from exc
        # Read after the fact: under TASKQ_IMMEDIATE the task has already run, as with
        # Django's ImmediateBackend.
        return to_result(row, task)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Return the current state of the task with id ``result_id``, from any process."""
        from taskq.models import Task

        # Only digits can be a row's id; anything else (or a number too large for the
        # column) is simply not a result, rather than a database error.
        if not isinstance(result_id, str) or not (result_id.isascii() and result_id.isdigit()):
            raise TaskResultDoesNotExist(result_id)
        if len(result_id) > 18:
            raise TaskResultDoesNotExist(result_id)
        row = Task.objects.filter(pk=int(result_id), path=RUN_PATH).first()
        if row is None or _stored(row)[1] != self.alias:
            raise TaskResultDoesNotExist(result_id)
        return to_result(row)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report a configuration this backend cannot work with."""
        messages: list[checks.CheckMessage] = []
        where = f"TASKS[{self.alias!r}]"
        if not apps.is_installed("taskq"):
            messages.append(
                checks.Error(
                    f"{where} uses taskq.backends.TaskqBackend, but 'taskq' is not in INSTALLED_APPS.",
                    hint="Add 'taskq' to INSTALLED_APPS, so its tables exist and its pools start.",
                    id="taskq.E101",
                )
            )
        served = settings.queues
        unserved = sorted(self.queues - set(served)) if served is not None else []
        if unserved:
            messages.append(
                checks.Warning(
                    f"{where}['QUEUES'] lists {unserved}, which TASKQ_QUEUES leaves out, so the pools "
                    "of processes with these settings never run tasks put on them.",
                    hint="Add them to TASKQ_QUEUES, or run manage.py taskq_worker --queues for them.",
                    id="taskq.W101",
                )
            )
        if not isinstance(self.options, dict):
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS'] is {self.options!r}; it must be a dict.",
                    hint=f"Use a dict with any of {', '.join(OPTION_NAMES)}.",
                    id="taskq.E102",
                )
            )
            return messages
        unknown = sorted(set(self.options) - set(OPTION_NAMES))
        if unknown:
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS'] has unknown keys {unknown}.",
                    hint=f"TaskqBackend takes only {', '.join(OPTION_NAMES)}; put other taskq "
                    "settings in TASKQ_* settings.",
                    id="taskq.E102",
                )
            )
        try:
            TaskDefaults(max_attempts=self.options.get("max_attempts"), timeout=self.options.get("timeout"))
        except TaskqInvalidTask as exc:
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS'] is invalid: {exc}",
                    hint="Fix the value, or leave it out to use TASKQ_DEFAULT_MAX_ATTEMPTS and "
                    "TASKQ_DEFAULT_TIMEOUT.",
                    id="taskq.E103",
                )
            )
        return messages


def run_django_task(
    path: str, backend: str, takes_context: bool, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """Call the ``@task`` at ``path`` for the running taskq row; TaskqBackend stores calls of this."""
    from taskq.models import Task

    current = current_task()
    if current is None:
        raise TaskqInvalidTask(
            "run_django_task runs only inside a taskq runner: enqueue the task with its .enqueue() instead."
        )
    django_task = _import_task(path)
    row = _running.get()
    if row is None or row.pk != current.task_id:
        row = Task.objects.get(pk=current.task_id)
    result = to_result(row, django_task)
    prefix = [TaskContext(task_result=result)] if takes_context else []
    _check_binds(django_task, [*prefix, *args], kwargs, with_context=False)
    for _, error in task_started.send_robust(TaskqBackend, task_result=result):
        if isinstance(error, Exception):
            logger.error(
                "task=%s path=%s event=signal_error signal=task_started error=%r", row.pk, path, error
            )
    return django_task.call(*prefix, *args, **kwargs)


def to_result(row: Task, task: DjangoTask[Any, Any] | None = None) -> TaskResult[Any]:
    """Describe a taskq row written by TaskqBackend as Django's TaskResult."""
    path, alias, _, args, kwargs = _stored(row)
    if task is None:
        task = _import_task(path)
        # If the backend's QUEUES changed since, describe it with the task's own defaults.
        with contextlib.suppress(DjangoInvalidTask):
            task = task.using(priority=row.priority, queue_name=row.queue, backend=alias)
    history = [entry for entry in row.history or [] if isinstance(entry, dict)]
    recorded = _recorded_workers(history)
    last = _last_recorded(history)
    # One id per attempt, so Django's attempts is the row's. An attempt after the history's
    # last (the one running now) ran on the row's pool; one the bounded history dropped
    # from its middle is no longer known.
    worker_ids = [recorded.get(n, row.worker if n > last else "") for n in range(1, row.attempts + 1)]
    result: TaskResult[Any] = TaskResult(
        task=task,
        id=str(row.pk),
        status=_STATUSES[row.status],
        enqueued_at=row.enqueued_at,
        started_at=_first_start(history) or row.started_at,
        finished_at=row.finished_at,
        last_attempted_at=row.started_at,
        args=args,
        kwargs=kwargs,
        backend=alias,
        errors=_errors(history),
        worker_ids=worker_ids,
    )
    if row.status == "succeeded":
        object.__setattr__(result, "_return_value", row.result)
    return result


def _stored(row: Task) -> tuple[str, str, bool, list[Any], dict[str, Any]]:
    path, alias, takes_context, args, kwargs = row.args
    return path, alias, bool(takes_context), list(args), dict(kwargs)


def _import_task(path: str) -> DjangoTask[Any, Any]:
    found = import_string(path)
    if not isinstance(found, DjangoTask):
        raise TaskqInvalidTask(
            f"{path} is not a task defined with @task from django.tasks: decorate it, or enqueue it "
            "with taskq.enqueue()."
        )
    return found


def _check_importable(task: DjangoTask[Any, Any]) -> None:
    # A worker finds the task by its dotted path, so that path must lead back to this function.
    try:
        found = import_string(task.module_path)
    except ImportError:
        found = None
    if not isinstance(found, DjangoTask) or found.func is not task.func:
        raise TaskqInvalidTask(
            f"{task.module_path} does not import back to this @task (is it shadowed, defined in "
            "__main__ or a method?): define it with @task at module level in an importable module."
        )


def _check_binds(
    task: DjangoTask[Any, Any], args: list[Any], kwargs: dict[str, Any], with_context: bool = True
) -> None:
    prefix = [None] if with_context and task.takes_context else []
    try:
        inspect.signature(task.func).bind(*prefix, *args, **kwargs)
    except TypeError as exc:
        raise TaskqInvalidTask(
            f"the arguments do not fit {task.module_path}{inspect.signature(task.func)}: {exc}. "
            "Pass arguments that match its signature."
        ) from None


def _recorded_workers(history: list[dict[str, Any]]) -> dict[int, str]:
    return {
        entry["attempt"]: str(entry.get("worker", ""))
        for entry in history
        if isinstance(entry.get("attempt"), int)
    }


def _last_recorded(history: list[dict[str, Any]]) -> int:
    """The number of the latest attempt the history holds, or 0."""
    numbers = [entry["attempt"] for entry in history if isinstance(entry.get("attempt"), int)]
    return max(numbers, default=len(history))


def _first_start(history: list[dict[str, Any]]) -> Any:
    from django.utils.dateparse import parse_datetime

    started = history[0].get("started_at") if history else None
    return parse_datetime(started) if isinstance(started, str) else None


def _errors(history: list[dict[str, Any]]) -> list[TaskError]:
    # Each entry is written in the same UPDATE as the attempt's outcome, so none is missing.
    return [
        TaskError(
            exception_class_path=str(entry.get("exception") or "builtins.Exception"),
            traceback=str(entry.get("traceback") or entry.get("error") or ""),
        )
        for entry in history
        if entry.get("outcome") in _ERROR_OUTCOMES
    ]


@receiver(taskq_signals.task_enqueued, dispatch_uid="taskq.backends.enqueued")
def _send_enqueued(sender: Any, task: Task, **kwargs: Any) -> None:
    # Sent here, before the row's on-commit wake, so it comes first even when
    # TASKQ_IMMEDIATE runs the task at once.
    enqueuing = _enqueuing.get()
    if enqueuing is None or task.path != RUN_PATH:
        return
    backend_class, django_task = enqueuing
    task_enqueued.send(backend_class, task_result=to_result(task, django_task))


@receiver(taskq_signals.task_started, dispatch_uid="taskq.backends.started")
def _remember_running(sender: Any, task: Task, **kwargs: Any) -> None:
    if task.path == RUN_PATH:
        _running.set(task)


@receiver(taskq_signals.task_finished, dispatch_uid="taskq.backends.finished")
def _send_finished(sender: Any, task: Task, **kwargs: Any) -> None:
    if task.path != RUN_PATH:
        return
    _running.set(None)
    try:
        result = to_result(task)
    except Exception as exc:  # noqa: BLE001 - a task that cannot be described must not stop the runner
        logger.error("task=%s event=signal_error signal=task_finished error=%r", task.pk, exc)
        return
    # Each attempt that started gets a task_finished; a retried one reports READY.
    for _, error in task_finished.send_robust(TaskqBackend, task_result=result):
        if isinstance(error, Exception):
            logger.error(
                "task=%s path=%s event=signal_error signal=task_finished error=%r",
                task.pk,
                result.task.module_path,
                error,
            )
