"""Report the queue's health for people (a table) and for scripts (JSON and the exit status)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connections

from taskq.management.commands._options import Bound
from taskq.management.commands._schema import explain
from taskq.status import Snapshot, take_snapshot
from taskq.status_text import render_text

# Moves the cursor home and clears the screen, so --watch redraws in place on a terminal.
CLEAR = "\033[H\033[J"


# A redraw faster than this only loads the database; slower than a day is not watching.
WATCH = Bound("--watch", 0.1, 86400, unit="seconds")
MAX_LAG = Bound("--max-lag", 0.001, 365 * 86400, unit="seconds")
# A fraction, not a percentage, so that "20" (meant as 20 %) is refused rather than never firing.
MAX_FAILURE_RATE = Bound("--max-failure-rate", 0, 1)


class Command(BaseCommand):
    help = (
        "Show counts by status and queue, the backlog lag, running tasks, recent failures, "
        "retrying tasks, throughput and failure rate, live workers and periodic schedules. Exits 1, "
        "with the reasons on stderr, when unhealthy (including a schedule overdue by more than its "
        "period plus a minute)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON document (schema 1).")
        parser.add_argument(
            "--watch",
            type=WATCH.argument,
            metavar="SECONDS",
            help=f"Refresh every SECONDS ({WATCH.low:g} to {WATCH.high:g}) until Ctrl-C.",
        )
        parser.add_argument(
            "--max-lag",
            type=MAX_LAG.argument,
            metavar="SECONDS",
            help="Unhealthy when the oldest due task has waited longer than this.",
        )
        parser.add_argument(
            "--max-failure-rate",
            type=MAX_FAILURE_RATE.argument,
            metavar="FRACTION",
            help=(
                "Unhealthy when more than this fraction (0 to 1; 0.2 is 20%%) of the tasks that "
                "succeeded or failed in the last hour failed. Cancelled tasks and retried attempts "
                "do not count."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_lag = None if options["max_lag"] is None else MAX_LAG.check(options["max_lag"])
        rate = options["max_failure_rate"]
        limits = (max_lag, None if rate is None else MAX_FAILURE_RATE.check(rate))
        watch = None if options["watch"] is None else WATCH.check(options["watch"])
        if watch is None:
            try:
                snapshot = take_snapshot()
            except DatabaseError as exc:
                raise explain(exc, "cannot read the queue") from exc
            problems = self._report(snapshot, options["json"], limits)
            for problem in problems:
                self.stderr.write(f"unhealthy: {problem}")
            if problems:
                raise SystemExit(1)
            return
        try:
            while True:
                try:
                    self._report(take_snapshot(), options["json"], limits, redraw=True)
                except DatabaseError as exc:
                    # Keep watching through an outage, on a fresh session each time.
                    self.stderr.write(f"taskq_status: {explain(exc, 'cannot read the queue')}")
                    connections.close_all()
                time.sleep(watch)
        except KeyboardInterrupt:
            self.stdout.write("")

    def _report(
        self,
        snapshot: Snapshot,
        as_json: bool,
        limits: tuple[float | None, float | None],
        redraw: bool = False,
    ) -> list[str]:
        if as_json:
            document = snapshot.as_json(*limits)
            # Under --watch, one compact document per line: a JSON Lines stream.
            self.stdout.write(json.dumps(document) if redraw else json.dumps(document, indent=2))
        else:
            text = render_text(snapshot, *limits)
            if redraw:
                text = (CLEAR if self.stdout.isatty() else "\n") + text
            self.stdout.write(text)
        self.stdout.flush()
        return snapshot.problems(*limits)
