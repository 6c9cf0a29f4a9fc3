"""Run a taskq pool in the foreground, for processes that serve no requests."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from datetime import timedelta
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections
from django.db.models import Q
from django.utils import timezone

from taskq import process
from taskq.conf import MAX_WORKERS, settings
from taskq.management.commands._options import Bound
from taskq.management.commands._schema import explain
from taskq.models import Status, Task
from taskq.pool import Pool, missing_tables

logger = logging.getLogger("taskq")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


WORKERS = Bound("--workers", 1, MAX_WORKERS, whole=True)


def _queues(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",")]
    if not all(queues):
        raise argparse.ArgumentTypeError(f"expected comma-separated queue names, not {value!r}")
    return queues


class Command(BaseCommand):
    help = (
        "Run a pool of taskq worker threads in the foreground. SIGTERM or SIGINT stops it "
        "gracefully; a second one stops it at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            type=WORKERS.argument,
            default=None,
            help=f"Threads that run tasks, 1 to {MAX_WORKERS} (TASKQ_WORKERS).",
        )
        parser.add_argument(
            "--queues",
            type=_queues,
            default=None,
            help="Comma-separated queues to serve (TASKQ_QUEUES; every queue).",
        )
        parser.add_argument(
            "--burst", action="store_true", help="Exit once no task is due and none of ours is running."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workers = None if options["workers"] is None else int(WORKERS.check(options["workers"]))
        # The flags given here decide this process's capacity, so a pool that
        # TASKQ_AUTOSTART=True started when the app loaded must not run beside it.
        process.stop()
        stop = threading.Event()
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()
            # Back to the defaults, so a second signal ends the process without waiting.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)

        for sig in STOP_SIGNALS:
            signal.signal(sig, request_stop)
        try:
            self._serve(workers, options["queues"], options["burst"], stop)
        except KeyboardInterrupt:
            raise CommandError(
                "taskq worker: interrupted again; its running tasks were abandoned and will run "
                "again once their leases lapse",
                returncode=130,
            ) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _serve(
        self, workers: int | None, queues: list[str] | None, burst: bool, stop: threading.Event
    ) -> None:
        pool = Pool(workers=workers, queues=queues).start()
        self._say(pool, f"{pool.size} threads, queues={','.join(pool.queues or []) or 'all'}")
        try:
            while not stop.wait(settings.poll_interval):
                if burst and self._drained(pool):
                    self._say(pool, "nothing is due, nothing runs")
                    break
        finally:
            self._say(pool, "stopping")
            stopped = pool.stop()
        if not stopped:
            raise CommandError(
                f"taskq worker {pool.name}: tasks still ran after the shutdown grace; their leases "
                "will lapse and another pool will run them again"
            )
        self._say(pool, "stopped")

    def _say(self, pool: Pool, message: str) -> None:
        self.stdout.write(f"taskq worker {pool.name}: {message}")
        self.stdout.flush()

    def _drained(self, pool: Pool) -> bool:
        # Ask the database rather than the pool's counters: a claim commits before the
        # pool counts it, but a task it claimed is "running" under its name at once. A
        # task due within the next poll counts too, so a retry queued for "now" by a
        # runner while this query was being built is not mistaken for "later".
        soon = timezone.now() + timedelta(seconds=pool.poll_interval)
        pending = Q(status=Status.QUEUED, run_after__lte=soon)
        if pool.queues is not None:
            pending &= Q(queue__in=pool.queues)
        mine = Q(status=Status.RUNNING, worker=pool.name)
        try:
            return not Task.objects.filter(pending | mine).exists()
        except Exception as exc:
            # Without its tables a burst can never drain: say so and end, not a traceback per poll.
            if isinstance(exc, DatabaseError) and missing_tables():
                raise explain(exc, "cannot read the queue") from None
            logger.exception("pool=%s event=burst_check_failed", pool.name)
            return False
        finally:
            close_old_connections()
