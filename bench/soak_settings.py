"""Django settings of the soak's gunicorn site: bench/settings.py, with its URLs and the pool on."""

from __future__ import annotations

from bench.settings import *  # noqa: F403 - the same databases and apps as every bench run

ROOT_URLCONF = "bench.soak_site"
# As a deployed site runs: each gunicorn process starts its own pool (deploy/gunicorn.conf.py),
# with taskq's default size and retries. Deleting the bench's False leaves taskq's default.
del TASKQ_AUTOSTART  # noqa: F821 - from the star import
TASKQ_WORKERS = 4
TASKQ_DEFAULT_MAX_ATTEMPTS = 3
# Short backoff, so the retried tasks finish within the run rather than trailing behind it.
TASKQ_RETRY_BACKOFF_BASE = 0.5
TASKQ_RETRY_BACKOFF_MAX = 5.0
