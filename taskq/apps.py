"""taskq's AppConfig: registers the checks and arms the pool, touching no database."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskqConfig(AppConfig):
    name = "taskq"
    verbose_name = _("Task queue")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from taskq import checks, process, schedule_entries  # noqa: F401 - checks register on import

        _register_tasks_backend()
        process.arm()


def _register_tasks_backend() -> None:
    # Django registers a task backend's check() only once something imports its tasks
    # module, which a project that never enqueues at startup may not do before `check`.
    from django.conf import settings

    backends = getattr(settings, "TASKS", None) or {}
    if any(str(b.get("BACKEND", "")) == "taskq.backends.TaskqBackend" for b in backends.values()):
        import taskq.backends  # noqa: F401 - importing registers its checks
