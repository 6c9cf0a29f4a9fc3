"""The test settings with TaskqBackend as the default Django Tasks backend, for child processes."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

TASKS = {
    "default": {"BACKEND": "taskq.backends.TaskqBackend", "QUEUES": ["default", "emails"]},
}
