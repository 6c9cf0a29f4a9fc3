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

        process.arm()
