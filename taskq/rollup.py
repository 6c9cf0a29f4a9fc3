"""A per-minute rollup of outcomes and backlog, so the dashboard's week of charts costs one small query.

Counting a week of finished rows per hour would read a million index entries on a busy site;
the pools instead write one row per minute, each counted once from an indexed range.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncMinute
from django.utils import timezone

from taskq.models import FINISHED, MinuteRollup, Status, Task

logger = logging.getLogger("taskq")

MINUTE = timedelta(minutes=1)
# A minute is rolled once it is this far behind, so outcomes written by a pool whose
# clock runs a little behind, or in a transaction still committing, land before the count.
SETTLE = timedelta(seconds=30)
KEEP = timedelta(days=8)
# One call rolls at most this many minutes: catching up after a long stop is spread over
# housekeeping rounds instead of one long query.
MAX_MINUTES_PER_CALL = 60
# Retries are read from the rows' history; at most this many rows are read per count.
RETRY_SCAN_LIMIT = 10_000


@dataclass
class Counts:
    """Outcomes in one bucket of time."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0


def floor_minute(moment: datetime) -> datetime:
    """``moment`` in UTC, cut down to its minute."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def count_outcomes(start: datetime, end: datetime) -> dict[datetime, Counts]:
    """Succeeded, failed and retried attempts per UTC minute in [start, end), from indexed ranges."""
    counts: dict[datetime, Counts] = {}
    # GROUP BY over a range of taskq_finished_idx (status, finished_at).
    rows = (
        Task.objects.filter(
            status__in=[Status.SUCCEEDED, Status.FAILED], finished_at__gte=start, finished_at__lt=end
        )
        .annotate(at=TruncMinute("finished_at", tzinfo=UTC))
        .order_by()
        .values_list("status", "at")
        .annotate(n=Count("pk"))
    )
    for status, at, n in rows:
        bucket = counts.setdefault(floor_minute(at), Counts())
        setattr(bucket, str(status), getattr(bucket, str(status)) + n)
    for at in retries(start, end):
        counts.setdefault(floor_minute(at), Counts()).retried += 1
    return counts


def retries(start: datetime, end: datetime) -> list[datetime]:
    """When each attempt that was retried in [start, end) ended, read from the rows' history."""
    # An attempt followed by another, or the last attempt of a row that is back in the
    # queue or running again, was retried. Such a row has more than one attempt and
    # finished after ``start``, or was queued to run, or started, after its retry ended:
    # each a range on an index, which leaves out an old backlog however long it is.
    candidates = [
        Task.objects.filter(status__in=FINISHED, finished_at__gte=start, attempts__gt=1),
        Task.objects.filter(status=Status.QUEUED, run_after__gte=start, attempts__gt=0),
        Task.objects.filter(status=Status.RUNNING, started_at__gte=start, attempts__gt=1),
    ]
    found = []
    for qs in candidates:
        for status, history in qs.order_by().values_list("status", "history")[:RETRY_SCAN_LIMIT]:
            entries = list(history or [])
            if status in FINISHED:
                entries = entries[:-1]
            for entry in entries:
                at = _parse(entry.get("finished_at")) if isinstance(entry, dict) else None
                if at is not None and start <= at < end:
                    found.append(at)
    return found


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backlog(now: datetime) -> tuple[int, float | None]:
    """How many tasks are due at ``now``, and how many seconds the oldest has waited."""
    # A range on taskq_due_idx (status, run_after).
    found = (
        Task.objects.queued()
        .filter(run_after__lte=now)
        .order_by()
        .aggregate(n=Count("pk"), oldest=Min("run_after"))
    )
    oldest = found["oldest"]
    return found["n"], None if oldest is None else max((now - oldest).total_seconds(), 0.0)


def roll_up(now: datetime | None = None, limit: int = MAX_MINUTES_PER_CALL) -> int:
    """Write the rollup rows of settled minutes not yet rolled (at most ``limit``); return how many.

    Safe to call from every pool at once: a minute another pool wrote first is kept.
    Costs one indexed query when there is nothing to do.
    """
    now = now or timezone.now()
    settled = floor_minute(now - SETTLE)  # minutes before this one are settled
    last = MinuteRollup.objects.order_by("-minute").values_list("minute", flat=True).first()
    if last is None:
        # A first rollup starts ``limit`` minutes back, not from the beginning of time.
        start = settled - min(KEEP - MINUTE, MINUTE * limit)
    else:
        start = max(floor_minute(last) + MINUTE, settled - KEEP + MINUTE)
    end = min(start + MINUTE * limit, settled)
    if start >= end:
        return 0
    counts = count_outcomes(start, end)
    # Only a roll that reaches the present samples the backlog, into its newest minute.
    due, lag = backlog(now) if end == settled else (None, None)
    newest = end - MINUTE
    rows = []
    at = start
    while at < end:
        c = counts.get(at, Counts())
        sampled = at == newest
        rows.append(
            MinuteRollup(
                minute=at,
                hour=at.replace(minute=0),
                succeeded=c.succeeded,
                failed=c.failed,
                retried=c.retried,
                due=due if sampled else None,
                lag=lag if sampled else None,
            )
        )
        at += MINUTE
    MinuteRollup.objects.bulk_create(rows, ignore_conflicts=True)
    MinuteRollup.objects.filter(minute__lt=settled - KEEP).delete()
    logger.debug("event=rolled_up minutes=%s from=%s due=%s", len(rows), start.isoformat(), due)
    return len(rows)
