"""Delete finished tasks older than an age now, as the pool's retention does on its own schedule."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from taskq.conf import settings
from taskq.management.commands._options import Bound
from taskq.management.commands._schema import explain
from taskq.models import Task

AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# A century back still leaves the cutoff well inside the range of a datetime.
MAX_AGE = timedelta(days=36500)
# Each batch's primary keys go into one IN (...) list, which SQLite caps at 32766 values.
BATCH_SIZE = Bound("--batch-size", 1, 10000, whole=True)


def parse_age(text: str) -> timedelta:
    """Turn "7d", "12h", "30m", "45s", "2w" or a plain number of seconds into a timedelta."""
    match = AGE.fullmatch(text.strip().lower())
    if match is None:
        raise CommandError(
            f"--older-than {text!r} is not an age: give a number with an optional unit, "
            "s, m, h, d or w, e.g. 7d, 12h, 30m or 3600 (seconds)."
        )
    return check_age(float(match[1]) * UNIT_SECONDS[match[2]], f"--older-than {text!r}")


def check_age(seconds: float, what: str) -> timedelta:
    """``seconds`` as a timedelta, or a CommandError naming ``what`` if it is out of range."""
    if not 0 <= seconds <= MAX_AGE.total_seconds():  # also refuses nan and inf
        raise CommandError(
            f"{what} is out of range: give an age from 0 to {MAX_AGE.days}d (100 years), e.g. 30d."
        )
    return timedelta(seconds=seconds)


class Command(BaseCommand):
    help = (
        "Delete finished tasks (succeeded, failed or cancelled) that finished longer ago than "
        "--older-than, or TASKQ_RETENTION if it is not given. Queued and running tasks are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default=None,
            metavar="AGE",
            help="e.g. 7d, 12h, 30m, 45s or plain seconds (default: TASKQ_RETENTION).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=BATCH_SIZE.argument,
            default=500,
            help=f"Rows per DELETE, to keep locks short: 1 to {BATCH_SIZE.high:g} (500).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - self._age(options["older_than"])
        batch_size = int(BATCH_SIZE.check(options["batch_size"]))
        try:
            self._prune(cutoff, batch_size, options["dry_run"])
        except DatabaseError as exc:
            raise explain(exc, "cannot prune") from exc

    def _prune(self, cutoff: datetime, batch_size: int, dry_run: bool) -> None:
        stale = Task.objects.finished().filter(finished_at__lt=cutoff)
        if dry_run:
            counts = dict(
                stale.values("status").annotate(n=Count("pk")).order_by("status").values_list("status", "n")
            )
            detail = ", ".join(f"{status}: {n}" for status, n in counts.items())
            self.stdout.write(
                f"Would delete {sum(counts.values())} finished tasks that finished before "
                f"{cutoff.isoformat(timespec='seconds')}" + (f" ({detail})." if detail else ".")
            )
            return
        total = 0
        while True:
            # Small batches, each its own statement, so a big backlog never holds one long lock.
            deleted = Task.objects.prune(cutoff, batch_size)
            total += deleted
            if deleted < batch_size:
                break
        self.stdout.write(
            f"Deleted {total} finished tasks that finished before {cutoff.isoformat(timespec='seconds')}."
        )

    def _age(self, older_than: str | timedelta | None) -> timedelta:
        if isinstance(older_than, timedelta):
            return check_age(older_than.total_seconds(), f"--older-than {older_than}")
        if older_than is not None:
            return parse_age(older_than)
        retention = settings.retention
        if retention is None:
            raise CommandError(
                "TASKQ_RETENTION is None (keep finished tasks forever), so say how old: "
                "pass --older-than, e.g. --older-than 30d."
            )
        return check_age(retention, f"TASKQ_RETENTION ({retention:g} s)")
