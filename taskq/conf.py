"""The one place taskq reads Django settings: lazily, on every access, with the defaults here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings

# Threads per pool: each holds a database connection, and more than this would exhaust a
# typical server's connection limit from one process.
MAX_WORKERS = 256
# Rows a runner may claim beyond its own next task. Each one waits for a thread while its
# lease is renewed, so a large number only moves work away from other processes' idle pools.
MAX_CLAIM_AHEAD = 16

DEFAULTS: dict[str, Any] = {
    "TASKQ_AUTOSTART": None,
    "TASKQ_WORKERS": 4,
    "TASKQ_QUEUES": None,
    "TASKQ_POLL_INTERVAL": 1.0,
    "TASKQ_LISTEN": None,
    "TASKQ_DEFAULT_QUEUE": "default",
    "TASKQ_DEFAULT_PRIORITY": 0,
    "TASKQ_DEFAULT_MAX_ATTEMPTS": 3,
    "TASKQ_DEFAULT_TIMEOUT": None,
    "TASKQ_RETRY_BACKOFF_BASE": 2.0,
    "TASKQ_RETRY_BACKOFF_MAX": 600.0,
    "TASKQ_LEASE_SECONDS": 60.0,
    "TASKQ_SHUTDOWN_GRACE": 10.0,
    "TASKQ_MAX_ABANDONED_THREADS": 4,
    "TASKQ_CLAIM_AHEAD": 2,
    "TASKQ_RETENTION": timedelta(days=7),
    "TASKQ_PRUNE_INTERVAL": 3600.0,
    "TASKQ_MAX_ARGS_BYTES": 65536,
    "TASKQ_MAX_RESULT_BYTES": 1048576,
    "TASKQ_IMMEDIATE": False,
    "TASKQ_SCHEDULE": {},
}


def _seconds(value: float | timedelta | None) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return None if value is None else float(value)


class Settings:
    """Typed, lazy view of the TASKQ_* settings, so override_settings always applies."""

    def get(self, name: str) -> Any:
        """Return the raw value of setting ``name``, or its default."""
        return getattr(django_settings, name, DEFAULTS[name])

    @property
    def autostart(self) -> bool | None:
        return self.get("TASKQ_AUTOSTART")  # type: ignore[no-any-return]

    @property
    def workers(self) -> int:
        return int(self.get("TASKQ_WORKERS"))

    @property
    def queues(self) -> list[str] | None:
        value = self.get("TASKQ_QUEUES")
        return None if value is None else list(value)

    @property
    def poll_interval(self) -> float:
        return float(self.get("TASKQ_POLL_INTERVAL"))

    @property
    def listen(self) -> bool | None:
        # None: taskq.listen's rule decides; see that module's docstring.
        value = self.get("TASKQ_LISTEN")
        return None if value is None else bool(value)

    @property
    def default_queue(self) -> str:
        return str(self.get("TASKQ_DEFAULT_QUEUE"))

    @property
    def default_priority(self) -> int:
        return int(self.get("TASKQ_DEFAULT_PRIORITY"))

    @property
    def default_max_attempts(self) -> int:
        return int(self.get("TASKQ_DEFAULT_MAX_ATTEMPTS"))

    @property
    def default_timeout(self) -> float | None:
        return _seconds(self.get("TASKQ_DEFAULT_TIMEOUT"))

    @property
    def backoff_base(self) -> float:
        return float(self.get("TASKQ_RETRY_BACKOFF_BASE"))

    @property
    def backoff_max(self) -> float:
        return float(self.get("TASKQ_RETRY_BACKOFF_MAX"))

    @property
    def lease_seconds(self) -> float:
        return float(self.get("TASKQ_LEASE_SECONDS"))

    @property
    def heartbeat_interval(self) -> float:
        # Four renewals per lease leave room for a slow round or two before a lease can lapse.
        return self.lease_seconds / 4

    @property
    def stale_after(self) -> float:
        # Two missed heartbeats: one late round is normal under load, two mean the pool is gone or stuck.
        return 2 * self.heartbeat_interval

    @property
    def shutdown_grace(self) -> float:
        return float(self.get("TASKQ_SHUTDOWN_GRACE"))

    @property
    def max_abandoned_threads(self) -> int:
        return int(self.get("TASKQ_MAX_ABANDONED_THREADS"))

    @property
    def claim_ahead(self) -> int:
        return int(self.get("TASKQ_CLAIM_AHEAD"))

    @property
    def retention(self) -> float | None:
        return _seconds(self.get("TASKQ_RETENTION"))

    @property
    def prune_interval(self) -> float:
        return float(self.get("TASKQ_PRUNE_INTERVAL"))

    @property
    def max_args_bytes(self) -> int:
        return int(self.get("TASKQ_MAX_ARGS_BYTES"))

    @property
    def max_result_bytes(self) -> int:
        return int(self.get("TASKQ_MAX_RESULT_BYTES"))

    @property
    def outcome_retry_seconds(self) -> float:
        # How long a runner keeps trying to write an outcome over a lost connection: well
        # inside the lease, so the row is never recovered while its outcome is on its way.
        return min(self.lease_seconds / 3, 10.0)

    @property
    def immediate(self) -> bool:
        return bool(self.get("TASKQ_IMMEDIATE"))

    @property
    def schedule(self) -> dict[str, Any]:
        # Anything but a dict is reported by check (taskq.E021) and schedules nothing.
        value = self.get("TASKQ_SCHEDULE")
        return dict(value) if isinstance(value, dict) else {}


settings = Settings()
