"""Database settings that make SQLite fit for a queue shared by threads and processes."""

from __future__ import annotations

from typing import Any

# WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN,
# so two claims queue up for it instead of deadlocking on a lock upgrade; the timeout
# is how long a writer waits for that lock before "database is locked".
SQLITE_OPTIONS: dict[str, Any] = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}


def tune(database: dict[str, Any]) -> dict[str, Any]:
    """Add taskq's recommended OPTIONS to a DATABASES entry, keeping any the user set."""
    if database.get("ENGINE") == "django.db.backends.sqlite3":
        database["OPTIONS"] = {**SQLITE_OPTIONS, **database.get("OPTIONS", {})}
    return database
