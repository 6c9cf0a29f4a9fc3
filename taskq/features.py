"""What each database can do for taskq, asked in one place instead of by vendor name."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

_ATTR = "_taskq_features"
# MariaDB reports a packet too large, a bad string, data too long, invalid JSON, a failed
# CHECK (json_valid) and JSON too deep as an OperationalError with one of these numbers.
MYSQL_REFUSED_DATA = frozenset({1153, 1301, 1366, 1406, 3140, 4025, 4040})


@dataclass(frozen=True)
class Features:
    """The capabilities taskq's SQL and admin choose between."""

    # One UPDATE ... RETURNING claims and reads rows back: PostgreSQL, SQLite 3.35 or later.
    returning_claim: bool
    # A runner may claim its own next task. Not on MariaDB, whose locking claim holds a
    # lock on every row it scans until it commits: runners doing that at once behind many
    # delayed rows filled InnoDB's lock heap until the server aborted.
    runners_claim: bool
    # MariaDB reads an index's distinct values by jumping between groups only when asked
    # in its own GROUP BY form; elsewhere a recursive CTE does the same.
    loose_index_scan_by_group: bool
    # SQLite plans MIN/MAX over a date range as two index probes only one bound at a time.
    probes_date_bounds: bool
    # The server has sessions of its own that a pool could leak, and a connection limit.
    server_sessions: bool
    # How the server reports its connection limit; None where it has none to read.
    max_connections_query: str | None


def features(conn: BaseDatabaseWrapper) -> Features:
    """Return what the database behind ``conn`` can do, worked out once per connection wrapper.

    Read from the backend and the driver, never from the server, so it answers while the
    connection is lost; what only the server can tell, such as skip_locked(), asks it apart.
    """
    found: Features | None = getattr(conn, _ATTR, None)
    if found is None:
        vendor = conn.vendor
        returning = vendor == "postgresql" or (
            # SQLite gained RETURNING in 3.35, which Django's feature flag for INSERT records.
            vendor == "sqlite" and bool(conn.features.can_return_columns_from_insert)
        )
        found = Features(
            returning_claim=returning,
            runners_claim=returning,
            loose_index_scan_by_group=vendor == "mysql",
            probes_date_bounds=vendor == "sqlite",
            server_sessions=vendor != "sqlite",
            max_connections_query={
                "postgresql": "SHOW max_connections",
                "mysql": "SELECT @@max_connections",
            }.get(vendor),
        )
        setattr(conn, _ATTR, found)
    return found


def refused_data_errors(conn: BaseDatabaseWrapper) -> frozenset[int]:
    """Error numbers of an OperationalError that mean the server refused the data, not the connection.

    Read from the vendor alone, never from the server: it is asked while the connection is lost.
    """
    return MYSQL_REFUSED_DATA if conn.vendor == "mysql" else frozenset()


def skip_locked(conn: BaseDatabaseWrapper) -> bool:
    """Whether SELECT ... FOR UPDATE SKIP LOCKED lets claimers pass each other's rows (asks MariaDB)."""
    return bool(conn.features.has_select_for_update_skip_locked)
