from __future__ import annotations

import pytest
from django.db import connection

from taskq.dbconfig import SQLITE_OPTIONS, tune


def test_tune_adds_sqlite_options_and_keeps_the_users() -> None:
    tuned = tune({"ENGINE": "django.db.backends.sqlite3", "NAME": "x", "OPTIONS": {"timeout": 5}})
    assert tuned["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert tuned["OPTIONS"]["timeout"] == 5
    assert tune({"ENGINE": "django.db.backends.postgresql"}) == {"ENGINE": "django.db.backends.postgresql"}


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite only")
def test_the_test_database_runs_in_wal_mode_with_immediate_transactions() -> None:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == SQLITE_OPTIONS["transaction_mode"]
