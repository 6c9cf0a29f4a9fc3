"""Settings for the demo site, read only from the environment (and an optional .env file).

Every variable is listed, with its default, in demo_site/README.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ

from demo_site.linkcheck.conf import DEFAULTS as LINKCHECK
from taskq.dbconfig import tune

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Real environment variables win over the file; DJANGO_ENV_FILE lets the tests read none.
environ.Env.read_env(os.environ.get("DJANGO_ENV_FILE", str(BASE_DIR / ".env")))

# DEBUG defaults off so a forgotten variable never exposes tracebacks in production.
DEBUG = env.bool("DEBUG", default=False)
# Only a DEBUG site may fall back to a published key; a deployment without SECRET_KEY
# stops at start-up with ImproperlyConfigured instead of signing with a key anyone can read.
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-demo-only" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The port gunicorn (deploy/gunicorn.conf.py) binds; the fake API's default URL follows it.
PORT = env.int("PORT", default=8000)
THIRD_PARTY_API_URL = env.str("THIRD_PARTY_API_URL", default=f"http://127.0.0.1:{PORT}/fake-api/")
THIRD_PARTY_API_TIMEOUT = env.float("THIRD_PARTY_API_TIMEOUT", default=LINKCHECK["THIRD_PARTY_API_TIMEOUT"])
FAKE_API = env.bool("FAKE_API", default=LINKCHECK["FAKE_API"])
FAKE_API_LATENCY = env.float("FAKE_API_LATENCY", default=LINKCHECK["FAKE_API_LATENCY"])
FAKE_API_FAILURE_RATE = env.float("FAKE_API_FAILURE_RATE", default=LINKCHECK["FAKE_API_FAILURE_RATE"])
_api_host = urlsplit(THIRD_PARTY_API_URL).hostname
if FAKE_API and _api_host and _api_host not in ALLOWED_HOSTS:
    # The tasks call the fake API back through this site, under the API URL's host name,
    # which may not be a name visitors use.
    ALLOWED_HOSTS.append(_api_host)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles, so runserver serves static files the way gunicorn does.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "taskq",
    "demo_site.linkcheck",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": tune(env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=0)
if DATABASE_POOL_SIZE:
    # psycopg's pool (PostgreSQL only). Django refuses it together with CONN_MAX_AGE > 0.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DATABASE_POOL_SIZE}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names may be cached forever, and each file is stored gzipped beside the original.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Unset: taskq decides from the server it runs in; false: only `manage.py taskq_worker` runs tasks.
TASKQ_AUTOSTART = env.bool("TASKQ_AUTOSTART", default=None)
TASKQ_WORKERS = env.int("TASKQ_WORKERS", default=4)
TASKQ_SHUTDOWN_GRACE = env.float("TASKQ_SHUTDOWN_GRACE", default=10.0)

# Django's Tasks API (django.tasks, or the django-tasks backport on 5.2) runs its @task
# functions in the same pools; OPTIONS gives them what that API has no word for.
TASKS = {
    "default": {
        "BACKEND": "taskq.backends.TaskqBackend",
        "OPTIONS": {"max_attempts": 3, "timeout": 60},
    }
}

# Seconds between re-checks of the latest links by the schedule; 0 switches it off.
RECHECK_EVERY = env.int("RECHECK_EVERY", default=180)
TASKQ_SCHEDULE = (
    {"recheck-recent": {"task": "demo_site.linkcheck.tasks.recheck_recent", "every": RECHECK_EVERY}}
    if RECHECK_EVERY > 0
    else {}
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "taskq": {"handlers": ["console"], "level": env.str("TASKQ_LOG_LEVEL", default="INFO")},
        "demo_site": {"handlers": ["console"], "level": "INFO"},
    },
}
