"""demo_site/settings.py reads everything from the environment: checked in fresh interpreters,
since the suite itself runs on tests/settings.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DUMP = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG, "ALLOWED_HOSTS": s.ALLOWED_HOSTS, "THIRD_PARTY_API_URL": s.THIRD_PARTY_API_URL,
    "ENGINE": db["ENGINE"], "OPTIONS": db.get("OPTIONS", {}), "CONN_MAX_AGE": db["CONN_MAX_AGE"],
    "TASKQ_WORKERS": s.TASKQ_WORKERS, "TASKQ_AUTOSTART": s.TASKQ_AUTOSTART,
    "STATICFILES": s.STORAGES["staticfiles"]["BACKEND"],
    "TASKS": s.TASKS, "TASKQ_SCHEDULE": s.TASKQ_SCHEDULE,
}))
# The settings pass Django's, taskq's and the Tasks API's system checks, where the database
# can be reached: Django 6.1 asks the server's version to check a GeneratedField.
import os, sys
from django.core.management import call_command
if os.environ.get("DUMP_CHECK", "1") == "1":
    call_command("check", "--fail-level", "WARNING", stdout=sys.stderr)
"""


def run_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TASKQ_", "DATABASE_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "demo_site.settings", "DJANGO_ENV_FILE": os.devnull, **env})
    return subprocess.run(
        [sys.executable, "-c", DUMP], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60
    )


def dump(**env: str) -> dict[str, Any]:
    result = run_settings(**env)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_a_deployment_without_secret_key_refuses_to_start() -> None:
    result = run_settings(DEBUG="false")
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_defaults() -> None:
    data = dump(DEBUG="true")
    assert data["DEBUG"] is True
    assert data["THIRD_PARTY_API_URL"] == "http://127.0.0.1:8000/fake-api/"
    assert data["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert data["ENGINE"] == "django.db.backends.sqlite3"
    assert data["OPTIONS"]["transaction_mode"] == "IMMEDIATE"  # taskq's SQLite tuning
    assert data["CONN_MAX_AGE"] == 0
    assert (data["TASKQ_WORKERS"], data["TASKQ_AUTOSTART"]) == (4, None)
    assert data["STATICFILES"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    # Django's Tasks API goes through taskq, and the schedule re-checks links every 3 minutes.
    assert data["TASKS"]["default"]["BACKEND"] == "taskq.backends.TaskqBackend"
    assert data["TASKQ_SCHEDULE"] == {
        "recheck-recent": {"task": "demo_site.linkcheck.tasks.recheck_recent", "every": 180}
    }


def test_the_periodic_recheck_follows_recheck_every() -> None:
    assert dump(DEBUG="true", RECHECK_EVERY="30")["TASKQ_SCHEDULE"]["recheck-recent"]["every"] == 30
    assert dump(DEBUG="true", RECHECK_EVERY="0")["TASKQ_SCHEDULE"] == {}


def test_everything_comes_from_the_environment() -> None:
    data = dump(
        SECRET_KEY="from-the-environment",
        ALLOWED_HOSTS="demo.example",
        PORT="9000",
        DATABASE_URL="postgres://app@db.example:5432/demo",
        DATABASE_POOL_SIZE="8",
        TASKQ_WORKERS="2",
        TASKQ_AUTOSTART="false",
        DUMP_CHECK="0",  # db.example is not there to ask
    )
    assert data["DEBUG"] is False
    # The fake API follows the port, and its host may be called even if visitors never use it.
    assert data["THIRD_PARTY_API_URL"] == "http://127.0.0.1:9000/fake-api/"
    assert data["ALLOWED_HOSTS"] == ["demo.example", "127.0.0.1"]
    assert data["ENGINE"] == "django.db.backends.postgresql"
    assert data["OPTIONS"] == {"pool": {"min_size": 1, "max_size": 8}}
    assert (data["TASKQ_WORKERS"], data["TASKQ_AUTOSTART"]) == (2, False)


def test_a_real_api_needs_no_fake_one() -> None:
    data = dump(DEBUG="true", FAKE_API="false", THIRD_PARTY_API_URL="https://api.example/v1/")
    assert data["THIRD_PARTY_API_URL"] == "https://api.example/v1/"
    assert "api.example" not in data["ALLOWED_HOSTS"]
