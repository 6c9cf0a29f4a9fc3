"""The one pool of this process: when to start it, how to stop it, and what a fork does to it."""

from __future__ import annotations

import atexit
import enum
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from django.core.signals import request_started
from django.db import connections

from taskq import wake
from taskq.conf import settings
from taskq.listen import MANAGEMENT_ENTRY_POINTS, serving_worker

logger = logging.getLogger("taskq")

_lock = threading.Lock()
_pool: Any = None  # taskq.pool.Pool; imported lazily because it needs the models
_pid: int | None = None
_hooks_installed = False
_held: Any = None  # the pool whose dispatcher is held still across a fork in progress
# Connections inherited across a fork are parked here, never closed: closing one would
# end the parent's session on the shared socket.
_inherited: list[Any] = []

# Servers that load the app in each serving process and do not fork it afterwards.
EAGER_SERVERS = frozenset({"uvicorn", "daphne", "hypercorn", "granian", "waitress-serve"})
# Pre-fork servers: with --preload the app loads in the master, which never serves.
PREFORK_SERVERS = frozenset({"gunicorn", "uwsgi"})


class Mode(enum.Enum):
    OFF = "off"
    EAGER = "eager"  # start now; the threads wait for the app registry
    LAZY = "lazy"  # start on this PID's first request


def decide(argv: Sequence[str], environ: dict[str, str] | os._Environ[str], forced: bool | None) -> Mode:
    """Decide how this process starts its pool, from its command line and TASKQ_AUTOSTART."""
    if forced is not None:
        return Mode.EAGER if forced else Mode.OFF
    program = os.path.basename(argv[0]) if argv else ""
    if program in MANAGEMENT_ENTRY_POINTS or program.startswith("django-admin"):
        command = argv[1] if len(argv) > 1 else ""
        if command == "runserver" and (environ.get("RUN_MAIN") == "true" or "--noreload" in argv):
            return Mode.EAGER
        # The autoreloader's parent, migrate, shell, test, taskq_worker (which runs its
        # own pool in the foreground) and every other command.
        return Mode.OFF
    if program in EAGER_SERVERS:
        return Mode.EAGER
    if program in PREFORK_SERVERS or "uwsgi" in sys.modules:
        return Mode.LAZY
    if "pytest" in program or "pytest" in sys.modules:
        return Mode.OFF
    # Something else serves requests (mod_wsgi, a custom WSGI host): start when one arrives.
    return Mode.LAZY


def arm(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Mode:
    """Called from AppConfig.ready(): start the pool or wait for a request, as decide() says."""
    _install_hooks()
    mode = decide(
        sys.argv if argv is None else argv,
        os.environ if environ is None else environ,
        settings.autostart,
    )
    if mode is Mode.EAGER:
        start()
    elif mode is Mode.LAZY:
        request_started.connect(_start_on_request, dispatch_uid="taskq.lazy_start")
    logger.debug("event=armed mode=%s pid=%s", mode.value, os.getpid())
    return mode


def _start_on_request(**kwargs: Any) -> None:
    if _pid != os.getpid():
        start()


def get_pool() -> Any:
    """Return this process's running pool, or None."""
    return _pool if _pid == os.getpid() else None


def start(workers: int | None = None, queues: Sequence[str] | None = None) -> Any:
    """Start this process's pool if it is not running yet, and return it."""
    global _pool, _pid
    from taskq.pool import Pool

    with _lock:
        if _pid != os.getpid() or _pool is None:
            _pool = Pool(workers=workers, queues=queues).start()
            _pid = os.getpid()
        return _pool


def stop(timeout: float | None = None) -> bool:
    """Stop this process's pool, waiting at most the shutdown grace (or ``timeout``)."""
    global _pool, _pid
    with _lock:
        pool, _pool, _pid = get_pool(), None, None
    return True if pool is None else bool(pool.stop(timeout))


def notify() -> None:
    """Wake this process's pools because a task was just committed; without one, other processes'."""
    # Every pool, not just get_pool()'s: taskq_worker's, and one a test started, must
    # see a task that one of their own tasks enqueued without waiting for a poll.
    wake.task_committed()


def _before_fork() -> None:
    global _held
    pool = get_pool()
    _held = pool if pool is not None and pool.hold_for_fork() else None


def _after_fork_in_parent() -> None:
    global _held
    if _held is not None:
        _held.release_after_fork()
        _held = None


def _after_fork_in_child() -> None:
    global _pool, _pid, _held
    _held = None
    # The parent's threads do not exist here; forget its pool and its connections.
    was_running = _pool is not None and _pid is not None
    _pool, _pid = None, None
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
    if was_running:
        start()


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
    atexit.register(stop)


__all__ = ["Mode", "arm", "decide", "get_pool", "notify", "serving_worker", "start", "stop"]
