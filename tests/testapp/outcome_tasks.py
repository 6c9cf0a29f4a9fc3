"""Task functions whose outcome the database may refuse; each counts its calls in the Item table."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from taskq import Retry
from tests.testapp.models import Item


def _called(key: str) -> None:
    # Written by the task, not by taskq, so it counts calls whatever taskq records.
    Item.objects.create(name=key)


def returns_nul(key: str) -> str:
    _called(key)
    return "a\x00b"


def returns_nested(key: str, depth: int) -> Any:
    _called(key)
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def returns_megabytes(key: str, megabytes: int) -> str:
    _called(key)
    return "x" * (megabytes * 1024 * 1024)


def returns_huge_int(key: str) -> int:
    _called(key)
    return 10**5000  # over the 4,300 digits int -> str allows


def raises_long_message(key: str, megabytes: int) -> None:
    _called(key)
    raise ValueError("y" * (megabytes * 1024 * 1024))


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def raises_unprintable(key: str) -> None:
    _called(key)
    raise Unprintable


def raises_nul_message(key: str) -> None:
    _called(key)
    raise ValueError("bad\x00byte and a lone \ud800 surrogate")


def retries_forever(key: str) -> None:
    _called(key)
    raise Retry(delay=float("inf"))


def leaves_a_transaction_open(key: str) -> str:
    _called(key)
    transaction.set_autocommit(False)
    Item.objects.create(name=f"{key}:uncommitted")
    return "done"


def cuts_its_own_connection(key: str) -> str:
    """Have the server drop this thread's session, as a restart or a network cut would."""
    _called(key)
    from django.db import connections

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        (pid,) = cursor.fetchone()
    # Another alias opens its own session in this thread; it kills ours and is closed again.
    killer = connections["default"].copy(alias="killer")
    try:
        with killer.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            else:
                cursor.execute(f"KILL CONNECTION {int(pid)}")
    finally:
        killer.close()
    return "survived"


def fits_one(key: str, x: int) -> int:
    _called(key)
    return x


def counted(path: str, key: str, seconds: float = 0.02) -> str:
    """Append ``key`` to the file at ``path`` (one line per call), then work for a moment."""
    import os
    import time

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    time.sleep(seconds)  # stands in for a slow API call, so runners overlap
    return key
