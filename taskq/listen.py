"""Wake pools in other processes at once: PostgreSQL's LISTEN/NOTIFY, and the rule for who listens.

A process that runs no pool (a web process with ``TASKQ_AUTOSTART=False``, a management
command, a shell) sends ``NOTIFY taskq`` after each enqueue commits; a process that runs
one wakes its own pool in memory and sends nothing. A listening pool's dispatcher waits on
its session's socket as well as on its in-process wake, so a task committed anywhere is
claimed within a round trip rather than at the next poll.

Who listens (``TASKQ_LISTEN``, default ``None``: decide by this rule):

- A pool whose connections persist (``CONN_MAX_AGE`` other than 0) listens on its
  dispatcher's own session, which it keeps anyway: no session is added.
- A worker process (``manage.py taskq_worker``) listens too, and so its dispatcher keeps
  its one session open between rounds even at ``CONN_MAX_AGE=0`` (or holds one slot of
  Django's connection pool): an idle worker process holds that one session.
- Any other pool at ``CONN_MAX_AGE=0`` (a web process's) does not listen, so that an idle
  web process keeps no session and holds no slot of Django's pool.

``True`` makes every pool on PostgreSQL listen (keeping its dispatcher's session at age 0);
``False`` turns listening and notifying off. Other databases have no LISTEN. A pool that
does not listen polls adaptively: soon after a round that claimed something, then backing
off to ``TASKQ_POLL_INTERVAL`` while nothing comes.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import select
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.conf import settings

logger = logging.getLogger("taskq")

CHANNEL = "taskq"
# A pool that does not listen polls this often after tasks came or went, then twice as
# long after each empty round, up to TASKQ_POLL_INTERVAL: a stream of tasks from
# other processes is picked up within tens of milliseconds, and each burst costs a quiet
# queue about five extra polls.
ACTIVE_POLL = 0.05


class Mode(enum.Enum):
    OFF = "off"
    ON = "on"  # LISTEN on the dispatcher's own session


def _alias() -> str:
    from taskq.models import Task  # the router needs the model; never at import time

    return router.db_for_write(Task)


def _psycopg3(conn: BaseDatabaseWrapper) -> bool:
    if conn.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3  # type: ignore[import-untyped]

    return bool(is_psycopg3)


def choose(conn: BaseDatabaseWrapper, worker_process: bool) -> Mode:
    """Whether a pool on ``conn``'s database listens, by TASKQ_LISTEN and this module's rule."""
    wanted = settings.listen
    if wanted is False or not _psycopg3(conn):
        return Mode.OFF
    # Django's pool needs CONN_MAX_AGE=0, so this is also "not on Django's pool".
    persistent = conn.settings_dict.get("CONN_MAX_AGE") != 0
    return Mode.ON if wanted or persistent or worker_process else Mode.OFF


def announce() -> None:
    """Tell pools in other processes that a task was committed: NOTIFY on PostgreSQL, else nothing."""
    if settings.listen is False:
        return
    conn = connections[_alias()]
    if not _psycopg3(conn):
        return
    try:
        # After the commit, in autocommit, on the enqueuing thread's own connection: the
        # caller's transaction stays one INSERT, and a rolled-back enqueue never notifies.
        with conn.cursor() as cursor:
            cursor.execute(f"NOTIFY {CHANNEL}")
    except Exception:  # noqa: BLE001 - an enqueue that committed must not raise here
        # The task is committed either way; other pools find it at their next poll.
        logger.warning("event=notify_failed: other processes' pools will find the task at their next poll")


class Wake(threading.Event):
    """A threading.Event that select() can wait on too, through a socket that ``set()`` writes to."""

    def __init__(self) -> None:
        super().__init__()
        self._pair: tuple[socket.socket, socket.socket] | None = None

    def set(self) -> None:
        super().set()
        pair = self._pair
        if pair is not None:
            # Full or closed: the socket is readable already, or nobody waits on it.
            with contextlib.suppress(OSError):
                pair[1].send(b"\0")

    def fileno(self) -> int:
        """The socket that becomes readable on ``set()``; opened on first use."""
        if self._pair is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._pair = (reader, writer)
        return self._pair[0].fileno()

    def drain(self) -> None:
        """Empty the socket, so the next select() waits for the next ``set()``."""
        if self._pair is None:
            return
        # One read: anything left makes the next select() return at once, and is read then.
        with contextlib.suppress(OSError):
            self._pair[0].recv(65536)

    def close(self) -> None:
        """Close the socket, if one was opened."""
        pair, self._pair = self._pair, None
        if pair is not None:
            for end in pair:
                end.close()


class Listener:
    """The dispatcher's wait: on its Wake alone, or on the Wake and a session that LISTENs."""

    def __init__(
        self,
        pool: str,
        wake: Wake,
        notify: Callable[[], None],
        talking: threading.Lock,
        worker_process: bool,
        poll_interval: float,
    ) -> None:
        self.pool = pool
        self._wake = wake
        self._notify = notify  # a notify counts as a commit: the next round claims
        self._talking = talking
        self._worker_process = worker_process
        self.mode: Mode | None = None  # decided on the dispatcher thread, at its first wait
        self._conn: Any = None  # the psycopg connection that ran LISTEN
        self._failing = False
        self._interval = poll_interval
        self._poll = poll_interval  # the adaptive poll's current wait, when not listening

    def wait(self, timeout: float, found: bool) -> bool:
        """Wait up to ``timeout`` s for a wake or notify (True if one came); found: tasks came or went."""
        if self.mode is None:
            self.mode = choose(connections[_alias()], self._worker_process)
            logger.info("pool=%s event=listen mode=%s", self.pool, self.mode.value)
        if self.mode is Mode.OFF:
            self._poll = min(ACTIVE_POLL, self._interval) if found else min(self._poll * 2, self._interval)
            return self._wake.wait(min(timeout, self._poll))
        if self._wake.is_set():
            # A round is due anyway; notifies wait in the socket until the pool next idles.
            return True
        # Opened before the checks below, so a set() from here on always reaches select().
        wake_fd = self._wake.fileno()
        try:
            with self._talking:
                conn = self._listening()
                self._wake.drain()
                if self._take_notifies(conn):
                    return True
            if self._wake.is_set():
                return True
            select.select([conn.fileno(), wake_fd], [], [], timeout)
            with self._talking:
                self._take_notifies(conn)
            self._failing = False
        except Exception as exc:  # noqa: BLE001 - a broken session means polling, never a dead pool
            self._lost(exc)
            return self._wake.wait(timeout)
        return self._wake.is_set()

    def close(self) -> None:
        """Stop listening (a session going back to Django's pool must not carry it); close the wake socket."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                conn.execute(f"UNLISTEN {CHANNEL}")
            except Exception:  # noqa: BLE001 - a broken session is closed after this anyway
                logger.debug("pool=%s event=unlisten_failed", self.pool)
        self._wake.close()

    def _listening(self) -> Any:
        """The dispatcher's psycopg connection, LISTENing; connected and LISTENed anew if needed."""
        dj = connections[_alias()]
        dj.ensure_connection()
        if not dj.settings_dict.get("CONN_MAX_AGE"):
            # At age 0 the session would close after every round and miss what was sent
            # meanwhile; Django keeps a connection whose close_at is None until it breaks.
            dj.close_at = None
        raw = dj.connection
        if raw is not self._conn:
            with dj.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            self._listened(raw)
        return raw

    def _listened(self, raw: Any) -> None:
        self._conn = raw
        # A task committed before the LISTEN sent nobody a notify: claim once to find it.
        self._notify()

    def _take_notifies(self, conn: Any) -> bool:
        # timeout=0 reads what the socket holds and what arrived during other queries.
        if sum(1 for _ in conn.notifies(timeout=0)):
            self._notify()
            return True
        return False

    def _lost(self, exc: Exception) -> None:
        self._conn = None
        if not self._failing:
            self._failing = True
            logger.warning(
                "pool=%s event=listen_failed error=%s: polling until the session is back",
                self.pool,
                f"{type(exc).__name__}: {exc}",
            )


# How a process started by manage.py or django-admin names its program in sys.argv[0].
MANAGEMENT_ENTRY_POINTS = frozenset({"manage.py", "django-admin", "__main__.py"})


def serving_worker(argv: Sequence[str] | None = None) -> bool:
    """True in a worker process (``manage.py taskq_worker``), whose pool is all it does."""
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0]) if argv else ""
    management = program in MANAGEMENT_ENTRY_POINTS or program.startswith("django-admin")
    return management and len(argv) > 1 and argv[1] == "taskq_worker"
