"""What a run can cover: the systems, and the database setups (BENCH_* variables for bench/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    name: str
    engine: str  # sqlite, postgres or mysql
    conn_max_age: int = 0
    pg_pool: int = 0  # max_size of Django's psycopg pool; 0 for none

    def env(self) -> dict[str, str]:
        """The environment a benchmark process needs for this setup."""
        return {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_DB": self.engine,
            "BENCH_CONN_MAX_AGE": str(self.conn_max_age),
            "BENCH_PG_POOL": str(self.pg_pool),
        }

    @property
    def server(self) -> bool:
        """True if the database is a server whose sessions can be counted."""
        return self.engine != "sqlite"


CONFIGS = {
    c.name: c
    for c in [
        Config("sqlite", "sqlite"),
        Config("pg-age0", "postgres", 0),
        Config("pg-age60", "postgres", 60),
        Config("pg-pool", "postgres", 0, pg_pool=12),
        Config("my-age0", "mysql", 0),
        Config("my-age60", "mysql", 60),
    ]
}

# In the order they run within a repeat; see bench/systems.py.
SYSTEMS = [
    "taskq", "dtasks-taskq", "taskq-worker", "thread", "executor", "thread-close", "db-worker",
    "huey", "huey-db", "baseline",
]  # fmt: skip
