"""The queue dashboard's figures, each read at one moment from indexed ranges, samples or the rollup."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Sum
from django.db.models.functions import Greatest

from taskq.conf import settings
from taskq.models import MinuteRollup, Status, Task, Worker
from taskq.rollup import MINUTE, Counts, backlog, count_outcomes, floor_minute
from taskq.schedule import ScheduleState, describe

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# Percentiles come from at most this many of the newest finished tasks of each outcome.
SAMPLE = 1000
FAILURE_SAMPLE = 5000
TOP = 5


@dataclass(frozen=True)
class Bucket:
    """Outcomes of the attempts that ended in [start, start + step)."""

    start: datetime
    succeeded: int = 0
    failed: int = 0
    retried: int = 0

    @property
    def total(self) -> int:
        """Every attempt that ended in the bucket."""
        return self.succeeded + self.failed + self.retried


@dataclass(frozen=True)
class Throughput:
    """Outcomes per bucket, oldest first; the last bucket is still filling."""

    step: timedelta
    buckets: list[Bucket]

    @property
    def totals(self) -> Bucket:
        """The sum over every bucket."""
        return Bucket(
            self.buckets[0].start if self.buckets else datetime.min.replace(tzinfo=UTC),
            sum(b.succeeded for b in self.buckets),
            sum(b.failed for b in self.buckets),
            sum(b.retried for b in self.buckets),
        )


@dataclass(frozen=True)
class BacklogPoint:
    """Due tasks and the oldest one's wait in seconds, as sampled in one bucket (None: no sample)."""

    start: datetime
    due: int | None
    lag: float | None


@dataclass(frozen=True)
class Timing:
    """One function's pickup and run times in seconds over a sample of its finished tasks."""

    path: str
    count: int
    failed: int
    wait_p50: float | None
    wait_p95: float | None
    run_p50: float | None
    run_p95: float | None


@dataclass(frozen=True)
class Pool:
    """A Worker row: one live pool, with how many of its runners hold a task."""

    name: str
    hostname: str
    pid: int
    threads: int
    busy: int
    queues: list[str] | None
    last_heartbeat: datetime
    heartbeat_age: float
    stale: bool

    @property
    def free(self) -> int:
        """Runners with nothing to run."""
        return max(self.threads - self.busy, 0)


@dataclass(frozen=True)
class Failing:
    """A function and how many of its tasks failed in the window."""

    path: str
    failed: int


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard page shows, read at ``at``."""

    at: datetime
    due: int
    lag: float | None
    running: int
    per_minute: Throughput
    per_hour: Throughput
    backlog_per_minute: list[BacklogPoint]
    backlog_per_hour: list[BacklogPoint]
    rolled_until: datetime | None
    timings_hour: list[Timing]
    timings_day: list[Timing]
    failing: list[Failing]
    pools: list[Pool]
    schedules: list[ScheduleState] = field(default_factory=list)

    @property
    def slowest(self) -> list[Timing]:
        """The functions with the longest p95 run time over the day's sample."""
        timed = [t for t in self.timings_day if t.run_p95 is not None]
        return sorted(timed, key=lambda t: (-(t.run_p95 or 0.0), t.path))[:TOP]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` by the nearest-rank method; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def floor_hour(moment: datetime) -> datetime:
    """``moment`` in UTC, cut down to its hour."""
    return floor_minute(moment).replace(minute=0)


def _starts(first: datetime, step: timedelta, n: int) -> list[datetime]:
    return [first + step * i for i in range(n)]


def throughput(now: datetime) -> tuple[Throughput, Throughput, datetime | None]:
    """Outcomes per minute over the last hour and per hour over the last week, and the rollup's end.

    Minutes the rollup holds come from it; the newer ones, at most an hour's, are counted
    from the task rows.
    """
    minute_starts = _starts(floor_minute(now) - MINUTE * 59, MINUTE, 60)
    hour_starts = _starts(floor_hour(now) - HOUR * (24 * 7 - 1), HOUR, 24 * 7)
    last = MinuteRollup.objects.order_by("-minute").values_list("minute", flat=True).first()
    rolled_until = floor_minute(last) + MINUTE if last is not None else None
    tail_start = max(rolled_until or minute_starts[0], minute_starts[0])
    by_minute: dict[datetime, Counts] = defaultdict(Counts)
    for row in MinuteRollup.objects.filter(minute__gte=minute_starts[0], minute__lt=tail_start).values(
        "minute", "succeeded", "failed", "retried"
    ):
        by_minute[floor_minute(row["minute"])] = Counts(row["succeeded"], row["failed"], row["retried"])
    tail = count_outcomes(tail_start, now + MINUTE)
    by_minute.update(tail)
    by_hour: dict[datetime, Counts] = defaultdict(Counts)
    for summed in (
        MinuteRollup.objects.filter(minute__gte=hour_starts[0], minute__lt=tail_start)
        .order_by()
        .values("hour")
        .annotate(s=Sum("succeeded"), f=Sum("failed"), r=Sum("retried"))
    ):
        by_hour[floor_minute(summed["hour"])] = Counts(summed["s"], summed["f"], summed["r"])
    for at, c in tail.items():
        hour = by_hour[floor_hour(at)]
        hour.succeeded, hour.failed, hour.retried = (
            hour.succeeded + c.succeeded,
            hour.failed + c.failed,
            hour.retried + c.retried,
        )
    per_minute = Throughput(MINUTE, [_bucket(at, by_minute.get(at)) for at in minute_starts])
    per_hour = Throughput(HOUR, [_bucket(at, by_hour.get(at)) for at in hour_starts])
    return per_minute, per_hour, rolled_until


def _bucket(at: datetime, c: Counts | None) -> Bucket:
    return Bucket(at) if c is None else Bucket(at, c.succeeded, c.failed, c.retried)


def backlog_history(now: datetime) -> tuple[list[BacklogPoint], list[BacklogPoint]]:
    """The rollup's backlog samples per minute over the last hour and per hour over the last week."""
    minute_starts = _starts(floor_minute(now) - MINUTE * 59, MINUTE, 60)
    hour_starts = _starts(floor_hour(now) - HOUR * (24 * 7 - 1), HOUR, 24 * 7)
    sampled = MinuteRollup.objects.filter(due__isnull=False)
    minutes = {
        floor_minute(at): (due, lag)
        for at, due, lag in sampled.filter(minute__gte=minute_starts[0]).values_list("minute", "due", "lag")
    }
    hours = {
        floor_minute(row["hour"]): (row["due"], row["lag"])
        for row in sampled.filter(minute__gte=hour_starts[0])
        .order_by()
        .values("hour")
        .annotate(due=Max("due"), lag=Max("lag"))
    }
    return (
        [BacklogPoint(at, *minutes.get(at, (None, None))) for at in minute_starts],
        [BacklogPoint(at, *hours.get(at, (None, None))) for at in hour_starts],
    )


def timings(now: datetime) -> tuple[list[Timing], list[Timing]]:
    """Per function p50/p95 wait and run times over the last hour and the last day, from samples.

    Each sample is the newest SAMPLE tasks of each outcome in the window, read backwards
    along taskq_finished_idx; the day's adds the newest SAMPLE from before the hour.
    """
    hour = _sample(now - HOUR, now + MINUTE)
    day = hour + _sample(now - DAY, now - HOUR)
    return _timings(hour), _timings(day)


_Row = tuple[str, str, timedelta | None, timedelta | None]


def _sample(start: datetime, end: datetime) -> list[_Row]:
    # The database subtracts: two durations per row cost less to load than four datetimes.
    # A task delayed on purpose waits from when it became due, not from its enqueue.
    wait = ExpressionWrapper(
        F("started_at") - Greatest("run_after", "enqueued_at"), output_field=DurationField()
    )
    run = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows: list[_Row] = []
    for status in (Status.SUCCEEDED, Status.FAILED):
        rows += (
            Task.objects.filter(status=status, finished_at__gte=start, finished_at__lt=end)
            .order_by("-finished_at")
            .annotate(wait=wait, run=run)
            .values_list("path", "status", "wait", "run")[:SAMPLE]
        )
    return rows


def _timings(rows: list[_Row]) -> list[Timing]:
    waits: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    for path, status, wait, run in rows:
        counts[path] += 1
        failed[path] += status == Status.FAILED
        if wait is not None:
            waits[path].append(max(wait.total_seconds(), 0.0))
        if run is not None:
            runs[path].append(max(run.total_seconds(), 0.0))
    return [
        Timing(
            path,
            counts[path],
            failed[path],
            percentile(waits[path], 0.5),
            percentile(waits[path], 0.95),
            percentile(runs[path], 0.5),
            percentile(runs[path], 0.95),
        )
        for path in sorted(counts)
    ]


def failing(now: datetime) -> list[Failing]:
    """The functions with the most failures in the last day, counted over the newest FAILURE_SAMPLE."""
    newest = Task.objects.failed().filter(finished_at__gte=now - DAY).order_by("-finished_at")
    counts: dict[str, int] = defaultdict(int)
    for path in newest.values_list("path", flat=True)[:FAILURE_SAMPLE]:
        counts[path] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Failing(path, n) for path, n in ranked[:TOP]]


def pools(now: datetime) -> list[Pool]:
    """Every Worker row, with its busy runners counted from the running tasks."""
    busy = dict(
        Task.objects.running()
        .order_by()
        .values_list("worker")
        .annotate(n=Count("pk"))
        .values_list("worker", "n")
    )
    stale_after = settings.stale_after
    found = []
    for w in Worker.objects.order_by("hostname", "pid", "name"):
        age = max((now - w.last_heartbeat).total_seconds(), 0.0)
        found.append(
            Pool(
                w.name,
                w.hostname,
                w.pid,
                w.threads,
                busy.get(w.name, 0),
                w.queues,
                w.last_heartbeat,
                age,
                age > stale_after,
            )
        )
    return found


def build(now: datetime) -> Dashboard:
    """Read every figure of the dashboard at ``now``."""
    due, lag = backlog(now)
    per_minute, per_hour, rolled_until = throughput(now)
    backlog_minutes, backlog_hours = backlog_history(now)
    # The current minute has no sample yet: it shows the backlog as read now.
    backlog_minutes[-1] = BacklogPoint(backlog_minutes[-1].start, due, lag)
    timings_hour, timings_day = timings(now)
    return Dashboard(
        at=now,
        due=due,
        lag=lag,
        running=Task.objects.running().count(),
        per_minute=per_minute,
        per_hour=per_hour,
        backlog_per_minute=backlog_minutes,
        backlog_per_hour=backlog_hours,
        rolled_until=rolled_until,
        timings_hour=timings_hour,
        timings_day=timings_day,
        failing=failing(now),
        pools=pools(now),
        schedules=describe(now),
    )
