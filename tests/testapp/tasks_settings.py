"""The test settings with TaskqBackend as the default Django Tasks backend, for child processes."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

TASKS = {
    "default": {"BACKEND": "taskq.backends.TaskqBackend", "QUEUES": ["default", "emails"]},
}
ROOT_URLCONF = "tests.testapp.durls"
# Every request and every pool round closes its session: an idle site holds none.
DATABASES["default"]["CONN_MAX_AGE"] = 0
