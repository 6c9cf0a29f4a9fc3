"""Run a taskq pool in the foreground, for processes that serve no requests."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django.utils import timezone

from taskq.conf import settings
from taskq.models import Task
from taskq.pool import Pool


class Command(BaseCommand):
    help = "Run a pool of taskq worker threads in the foreground until SIGTERM or SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=None, help="Threads (TASKQ_WORKERS).")
        parser.add_argument(
            "--queues", default=None, help="Comma-separated queues to serve (TASKQ_QUEUES; all)."
        )
        parser.add_argument("--burst", action="store_true", help="Exit once nothing is due and nothing runs.")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = options["queues"].split(",") if options["queues"] else None
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            # Only set a flag here: the pool stops from the main thread below.
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        pool = Pool(workers=options["workers"], queues=queues).start()
        self.stdout.write(f"taskq worker {pool.name}: {pool.size} threads, queues={queues or 'all'}")
        self.stdout.flush()
        try:
            while not stop.wait(settings.poll_interval):
                if options["burst"] and self._drained(pool):
                    break
        finally:
            pool.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(f"taskq worker {pool.name}: stopped")

    def _drained(self, pool: Pool) -> bool:
        if pool.running_tasks() or pool.busy:
            return False
        try:
            return not Task.objects.due(timezone.now(), pool.queues).exists()
        finally:
            close_old_connections()
