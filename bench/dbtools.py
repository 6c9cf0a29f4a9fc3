"""Database chores for the harness: create the bench databases, empty tables, count sessions."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Model


def truncate(*models: type[Model]) -> None:
    """Empty these tables fast (TRUNCATE where the database has it)."""
    with connection.cursor() as cursor:
        for model in models:
            table = connection.ops.quote_name(model._meta.db_table)
            if connection.vendor == "sqlite":
                cursor.execute(f"DELETE FROM {table}")
            else:
                cursor.execute(f"TRUNCATE TABLE {table}")


def server_connect(engine: str, settings: dict[str, Any]) -> Any:
    """A raw autocommit connection to the server, outside the bench database, for watching it."""
    if engine == "postgres":
        import psycopg

        return psycopg.connect(
            host=settings["HOST"],
            port=settings["PORT"],
            user=settings["USER"],
            dbname="postgres",
            autocommit=True,
        )
    import MySQLdb

    conn = MySQLdb.connect(host=settings["HOST"], port=int(settings["PORT"]), user=settings["USER"])
    conn.autocommit(True)
    return conn


def count_sessions(engine: str, conn: Any, name: str) -> int:
    """How many sessions the server has open on database ``name``."""
    cursor = conn.cursor()
    if engine == "postgres":
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name])
    else:
        cursor.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = %s", [name])
    (count,) = cursor.fetchone()
    cursor.close()
    return int(count)


def create_database(engine: str, settings: dict[str, Any]) -> None:
    """Create the bench database on the server if it does not exist yet."""
    conn = server_connect(engine, settings)
    try:
        cursor = conn.cursor()
        name = settings["NAME"]
        if engine == "postgres":
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
        else:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        cursor.close()
    finally:
        conn.close()
