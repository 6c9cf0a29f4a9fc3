"""Minimal settings for taskq's own tests; DATABASE_URL picks the backend."""

from __future__ import annotations

import os
from pathlib import Path

import environ

from taskq.dbconfig import tune

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "taskq-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskq",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"

_default = environ.Env().db_url_config(
    os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / '.test-db.sqlite3'}"
)
# Threads share the test database, so SQLite's test database must be a file, not memory:
# one beside the database DATABASE_URL names, so runs against different files can overlap.
if _default["ENGINE"] == "django.db.backends.sqlite3":
    _named = Path(str(_default["NAME"]))
    _test_file = _named.with_name(f".test-{_named.stem}.sqlite3") if os.environ.get("DATABASE_URL") else None
    _default["TEST"] = {"NAME": str(_test_file or BASE_DIR / ".test-db.sqlite3")}
# psycopg's server-side binding (and so its prepared statements) is a setting a site may turn
# on; .ci/run runs the statement-level tests under it too.
if os.environ.get("TASKQ_TEST_SERVER_SIDE_BINDING") and _default["ENGINE"] == "django.db.backends.postgresql":
    _default.setdefault("OPTIONS", {})["server_side_binding"] = True
DATABASES = {"default": tune(_default)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Tight intervals keep the threaded tests quick; tests that need others override them.
TASKQ_POLL_INTERVAL = 0.05
TASKQ_SHUTDOWN_GRACE = 5.0
TASKQ_RETRY_BACKOFF_BASE = 0.0
TASKQ_RETRY_BACKOFF_MAX = 0.0

# Child worker processes in the crash and outage tests run with a short lease, so a
# killed process's tasks are recovered within seconds.
if os.environ.get("TASKQ_TEST_LEASE"):
    TASKQ_LEASE_SECONDS = float(os.environ["TASKQ_TEST_LEASE"])
