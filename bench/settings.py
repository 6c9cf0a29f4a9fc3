"""Django settings for one benchmark process; the BENCH_* environment picks the database setup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from taskq.dbconfig import tune

BENCH_DIR = Path(__file__).resolve().parent
SQLITE_PATH = Path(os.environ.get("BENCH_SQLITE_PATH", BENCH_DIR / "results" / "taskq_bench_sqlite.sqlite3"))

SECRET_KEY = "taskq-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "bench.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "taskq",
    "bench.benchapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
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

# The peers are importable only in the benchmark virtualenv; bench/run always uses it.
try:
    import django_tasks_db  # type: ignore[import-not-found, unused-ignore]  # noqa: F401

    INSTALLED_APPS += ["django_tasks", "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
except ImportError:
    pass

# Django's Tasks API on taskq's own pool, under an alias of its own (the system "dtasks-taskq").
TASKS = {**globals().get("TASKS", {}), "taskq": {"BACKEND": "taskq.backends.TaskqBackend"}}

# huey through its Django integration, on the local Redis (its canonical broker), in a db of
# its own (15) that each huey run flushes. Only its consumer (run_huey, which bench/systems.py
# starts with BENCH_HUEY=1) loads the app; the web process imports huey only when the huey
# system runs: loaded into every process, huey and redis-py would add some 16 MB to each RSS.
HUEY = {
    "huey_class": "huey.RedisHuey",
    "name": "taskq-bench",
    "immediate": False,
    "connection": {
        "host": os.environ.get("BENCH_REDIS_HOST", "127.0.0.1"),
        "port": int(os.environ.get("BENCH_REDIS_PORT", "6379")),
        "db": int(os.environ.get("BENCH_REDIS_DB", "15")),
    },
}
if os.environ.get("BENCH_HUEY") == "1":
    INSTALLED_APPS += ["huey.contrib.djhuey"]


def database(engine: str, conn_max_age: int, pg_pool: int) -> dict[str, Any]:
    """One DATABASES entry for ``engine`` (sqlite, postgres or mysql)."""
    if engine == "sqlite":
        return tune({"ENGINE": "django.db.backends.sqlite3", "NAME": str(SQLITE_PATH)})
    host = os.environ.get("BENCH_DB_HOST", "127.0.0.1")
    if engine == "postgres":
        entry: dict[str, Any] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_PG_NAME", "taskq_bench_pg"),
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
            "HOST": host,
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
            "CONN_MAX_AGE": conn_max_age,
        }
        if pg_pool:
            # Django's own psycopg pool; it needs CONN_MAX_AGE 0. Room for 8 runners, a
            # dispatcher and the enqueuing thread, so no thread waits for a connection.
            entry["OPTIONS"] = {"pool": {"min_size": 1, "max_size": pg_pool}}
        if os.environ.get("BENCH_PG_SERVER_SIDE_BINDING") == "1":
            # psycopg binds parameters on the server, and so prepares a statement after its
            # fifth run on a connection: what that buys a queue whose few statements repeat.
            entry.setdefault("OPTIONS", {})["server_side_binding"] = True
        return entry
    if engine == "mysql":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("BENCH_MY_NAME", "taskq_bench_my"),
            "USER": os.environ.get("BENCH_MY_USER", "root"),
            "HOST": host,
            "PORT": os.environ.get("BENCH_MY_PORT", "3306"),
            "CONN_MAX_AGE": conn_max_age,
            "OPTIONS": {"charset": "utf8mb4"},
        }
    raise ValueError(f"BENCH_DB must be sqlite, postgres or mysql, not {engine!r}")


DATABASES = {
    "default": database(
        os.environ.get("BENCH_DB", "sqlite"),
        int(os.environ.get("BENCH_CONN_MAX_AGE", "0")),
        int(os.environ.get("BENCH_PG_POOL", "0")),
    )
}

# huey-db: huey's own SQL storage in the bench database, the like-for-like durable peer.
# Its tables live beside taskq's (in the same SQLite file, or the same PostgreSQL database),
# so both queues share the database with the tasks' writes. huey has no MySQL storage.
if os.environ.get("BENCH_HUEY_STORAGE") == "db":
    _engine = os.environ.get("BENCH_DB", "sqlite")
    if _engine == "sqlite":
        HUEY = {"huey_class": "huey.SqliteHuey", "name": "taskq-bench", "immediate": False,
                "connection": {"filename": str(SQLITE_PATH)}}  # fmt: skip
    elif _engine == "postgres":
        _pg = database("postgres", 0, 0)
        _dsn = f"host={_pg['HOST']} port={_pg['PORT']} user={_pg['USER']} dbname={_pg['NAME']}"
        HUEY = {"huey_class": "huey.PostgresHuey", "name": "taskq-bench", "immediate": False,
                "connection": {"dsn": _dsn}}  # fmt: skip
    else:
        raise ValueError("huey has no MariaDB storage: run huey-db on sqlite or postgres configs only")

# The benchmark starts and stops the pool itself, with 8 threads like every peer.
TASKQ_AUTOSTART = False
TASKQ_WORKERS = 8
TASKQ_POLL_INTERVAL = float(os.environ.get("BENCH_TASKQ_POLL", "1.0"))
TASKQ_DEFAULT_MAX_ATTEMPTS = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "taskq": {"handlers": ["stderr"], "level": "WARNING"},
        "django_tasks": {"level": "WARNING"},
        "django_tasks_db": {"level": "WARNING"},
    },
}
