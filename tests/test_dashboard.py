"""The dashboard's figures and the minute rollup, against rows the tests write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from taskq import dashboard, svg
from taskq.models import MinuteRollup, Status, Task, Worker
from taskq.rollup import MINUTE, floor_minute, roll_up
from tests.rows import make
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

# Half past a minute, so rows placed whole minutes earlier fall well inside their minute.
NOW = datetime(2026, 12, 6, 12, 30, 30, tzinfo=UTC)
ADD = "tests.testapp.tasks.add"
FAIL = "tests.testapp.tasks.fail"
GIVE_UP = "tests.testapp.tasks.give_up"
ECHO = "tests.testapp.tasks.echo"


def entry(outcome: str, finished_at: datetime, attempt: int = 1) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "worker": "web-1:42:cafe",
        "started_at": (finished_at - timedelta(seconds=1)).isoformat(),
        "finished_at": finished_at.isoformat(),
        "outcome": outcome,
        "error": "",
        "exception": "",
        "traceback": "",
    }


def ended(
    status: Status, at: datetime, path: str = ADD, run: float = 2.0, wait: float = 1.0, **fields: Any
) -> Task:
    """A ``path`` task, due ``wait + run`` seconds before ``at``, that started and ended at ``at``."""
    started = at - timedelta(seconds=run)
    due = started - timedelta(seconds=wait)
    return make(
        tasks.add,
        path=path,
        status=status,
        attempts=fields.pop("attempts", 1),
        enqueued_at=due,
        run_after=due,
        started_at=started,
        finished_at=at,
        history=fields.pop("history", [entry(str(status), at)]),
        **fields,
    )


def minute_bucket(board: dashboard.Throughput, at: datetime) -> dashboard.Bucket:
    return next(b for b in board.buckets if b.start == floor_minute(at))


def test_per_minute_counts_each_outcome_in_the_minute_it_ended() -> None:
    ended(Status.SUCCEEDED, NOW - timedelta(minutes=1))
    ended(Status.SUCCEEDED, NOW - timedelta(minutes=1, seconds=10))
    ended(Status.FAILED, NOW - timedelta(minutes=2), path=FAIL)
    # Retried once at -5 min, then succeeded at -4 min.
    ended(
        Status.SUCCEEDED,
        NOW - timedelta(minutes=4),
        attempts=2,
        history=[
            entry("retried", NOW - timedelta(minutes=5)),
            entry("succeeded", NOW - timedelta(minutes=4), 2),
        ],
    )
    # Back in the queue after its first attempt timed out at -3 min.
    make(
        tasks.add,
        attempts=1,
        run_after=NOW + MINUTE,
        history=[entry("timed_out", NOW - timedelta(minutes=3))],
    )
    ended(Status.SUCCEEDED, NOW - timedelta(hours=2))  # outside the hour

    per_minute, per_hour, rolled_until = dashboard.throughput(NOW)

    assert len(per_minute.buckets) == 60
    assert per_minute.buckets[-1].start == floor_minute(NOW)
    assert minute_bucket(per_minute, NOW - timedelta(minutes=1)) == dashboard.Bucket(
        floor_minute(NOW - timedelta(minutes=1)), succeeded=2
    )
    assert minute_bucket(per_minute, NOW - timedelta(minutes=2)).failed == 1
    assert minute_bucket(per_minute, NOW - timedelta(minutes=3)).retried == 1
    assert minute_bucket(per_minute, NOW - timedelta(minutes=4)).succeeded == 1
    assert minute_bucket(per_minute, NOW - timedelta(minutes=5)).retried == 1
    assert per_minute.totals.total == 6
    # Without a rollup the week knows only the hour counted from the rows.
    assert rolled_until is None
    assert len(per_hour.buckets) == 24 * 7
    assert per_hour.totals.total == 6


def test_roll_up_writes_each_settled_minute_once_and_the_week_reads_it() -> None:
    ended(Status.SUCCEEDED, NOW - timedelta(hours=3))
    ended(Status.FAILED, NOW - timedelta(hours=3), path=FAIL)
    ended(Status.SUCCEEDED, NOW - timedelta(seconds=20))  # in a minute not yet settled

    assert roll_up(NOW, limit=4 * 60) == 4 * 60
    assert roll_up(NOW, limit=4 * 60) == 0  # nothing new has settled
    rolled = MinuteRollup.objects.get(minute=floor_minute(NOW - timedelta(hours=3)))
    assert (rolled.succeeded, rolled.failed, rolled.retried) == (1, 1, 0)

    per_minute, per_hour, rolled_until = dashboard.throughput(NOW)

    assert rolled_until == floor_minute(NOW)  # the current minute comes from the rows
    three_hours_ago = next(
        b for b in per_hour.buckets if b.start == dashboard.floor_hour(NOW - timedelta(hours=3))
    )
    assert (three_hours_ago.succeeded, three_hours_ago.failed) == (1, 1)
    assert per_hour.buckets[-1].succeeded == 1
    assert per_minute.buckets[-1].succeeded == 1
    # A minute counted by the rollup is not counted again from the rows.
    assert per_hour.totals.total == 3


def test_roll_up_catches_up_from_the_last_rolled_minute() -> None:
    assert roll_up(NOW - timedelta(minutes=30), limit=5) == 5
    ended(Status.SUCCEEDED, NOW - timedelta(minutes=10))

    assert roll_up(NOW, limit=1000) == 30  # from where the first call stopped to the settled minute
    assert MinuteRollup.objects.get(minute=floor_minute(NOW - timedelta(minutes=10))).succeeded == 1
    assert MinuteRollup.objects.count() == 35


def test_roll_up_samples_the_backlog_into_the_newest_minute() -> None:
    make(tasks.add, run_after=NOW - timedelta(seconds=90))
    make(tasks.add, run_after=NOW - timedelta(seconds=10))
    make(tasks.add, run_after=NOW + timedelta(hours=1))  # not due

    roll_up(NOW, limit=3)

    newest = MinuteRollup.objects.order_by("-minute").first()
    assert newest is not None
    assert newest.minute == floor_minute(NOW) - MINUTE
    assert (newest.due, newest.lag) == (2, 90.0)
    assert MinuteRollup.objects.filter(due__isnull=False).count() == 1
    minutes, hours = dashboard.backlog_history(NOW)
    assert minutes[-2] == dashboard.BacklogPoint(newest.minute, 2, 90.0)
    assert hours[-1].due == 2


def test_roll_up_keeps_a_minute_another_pool_wrote_first() -> None:
    minute = floor_minute(NOW) - MINUTE
    MinuteRollup.objects.create(minute=minute, hour=minute.replace(minute=0), succeeded=7)
    ended(Status.SUCCEEDED, NOW - timedelta(minutes=1))

    assert roll_up(NOW + timedelta(minutes=1), limit=1) == 1

    assert MinuteRollup.objects.get(minute=floor_minute(NOW) - MINUTE).succeeded == 7


def test_roll_up_forgets_minutes_older_than_it_keeps() -> None:
    old = floor_minute(NOW - timedelta(days=9))
    MinuteRollup.objects.create(minute=old, hour=old.replace(minute=0))

    roll_up(NOW, limit=1)

    assert not MinuteRollup.objects.filter(minute__lt=NOW - timedelta(days=8)).exists()


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([3.0], 0.95, 3.0),
        ([4, 1, 3, 2], 0.5, 2),
        ([4, 1, 3, 2], 0.95, 4),
        ([*range(1, 101)], 0.95, 95),
    ],
)
def test_percentile_uses_the_nearest_rank(
    values: list[float], fraction: float, expected: float | None
) -> None:
    assert dashboard.percentile(values, fraction) == expected


def test_timings_give_each_function_its_wait_and_run_percentiles() -> None:
    for i in range(1, 21):  # runs of 1..20 s, waits of 0.5..10 s
        ended(Status.SUCCEEDED, NOW - timedelta(minutes=10), run=float(i), wait=i / 2)
    ended(Status.FAILED, NOW - timedelta(minutes=5), path=FAIL, run=30.0, wait=0.0)
    ended(Status.FAILED, NOW - timedelta(hours=5), path=FAIL, run=60.0, wait=0.0)
    # Delayed on purpose: it waits from when it became due, not from its enqueue.
    delayed = ended(Status.SUCCEEDED, NOW - timedelta(hours=2), path=ECHO, run=1.0, wait=3.0)
    Task.objects.filter(pk=delayed.pk).update(enqueued_at=delayed.run_after - timedelta(hours=1))

    hour, day = dashboard.timings(NOW)

    by_path = {t.path: t for t in hour}
    assert set(by_path) == {ADD, FAIL}
    add = by_path[ADD]
    assert (add.count, add.failed) == (20, 0)
    assert (add.run_p50, add.run_p95) == (10.0, 19.0)
    assert (add.wait_p50, add.wait_p95) == (5.0, 9.5)
    assert (by_path[FAIL].failed, by_path[FAIL].run_p95) == (1, 30.0)
    day_by_path = {t.path: t for t in day}
    assert day_by_path[FAIL].count == 2
    assert day_by_path[FAIL].run_p95 == 60.0
    assert day_by_path[ECHO].wait_p50 == 3.0


def test_the_most_failing_and_the_slowest_functions_lead_their_lists() -> None:
    for _ in range(3):
        ended(Status.FAILED, NOW - timedelta(minutes=30), path=FAIL, run=1.0)
    ended(Status.FAILED, NOW - timedelta(minutes=30), path=GIVE_UP, run=1.0)
    ended(Status.FAILED, NOW - timedelta(days=2), path=GIVE_UP)  # outside the day
    ended(Status.SUCCEEDED, NOW - timedelta(minutes=30), path=ECHO, run=90.0)

    board = dashboard.build(NOW)

    assert [(f.path, f.failed) for f in board.failing] == [(FAIL, 3), (GIVE_UP, 1)]
    assert board.slowest[0].path == ECHO


def test_pools_count_busy_runners_and_mark_the_stale() -> None:
    Worker.objects.create(name="web-1:42:cafe", hostname="web-1", pid=42, threads=4, last_heartbeat=NOW)
    Worker.objects.create(
        name="web-2:7:beef", hostname="web-2", pid=7, threads=2, last_heartbeat=NOW - timedelta(minutes=5)
    )
    for _ in range(3):
        make(tasks.add, status=Status.RUNNING, attempts=1, started_at=NOW, worker="web-1:42:cafe")

    found = {p.name: p for p in dashboard.pools(NOW)}

    assert (found["web-1:42:cafe"].busy, found["web-1:42:cafe"].free, found["web-1:42:cafe"].stale) == (
        3,
        1,
        False,
    )
    assert (found["web-2:7:beef"].busy, found["web-2:7:beef"].stale) == (0, True)


def test_build_reads_the_backlog_now_in_a_bounded_number_of_queries(
    django_assert_max_num_queries: Any,
) -> None:
    make(tasks.add, run_after=NOW - timedelta(minutes=2))
    ended(Status.SUCCEEDED, NOW - timedelta(minutes=1))
    roll_up(NOW - timedelta(minutes=5), limit=60)

    with django_assert_max_num_queries(20):
        board = dashboard.build(NOW)

    assert (board.due, board.lag, board.running) == (1, 120.0, 0)
    assert board.per_minute.totals.succeeded == 1


def test_build_reads_the_same_figures_at_any_time_zone(settings: Any) -> None:
    settings.TIME_ZONE = "Asia/Kolkata"  # half an hour off UTC: buckets stay whole UTC minutes and hours
    ended(Status.SUCCEEDED, NOW - timedelta(hours=3))
    roll_up(NOW, limit=4 * 60)

    board = dashboard.build(timezone.localtime(NOW))

    assert board.per_hour.totals.succeeded == 1
    assert all(b.start.minute == 0 for b in board.per_hour.buckets)


@pytest.mark.django_db(databases=[])
def test_svg_charts_escape_every_text_and_draw_nothing_for_no_data() -> None:
    evil = "<script>alert(1)</script>"
    series = [svg.Series(evil, [0, 3, None], "x", '"red'), svg.Series("b", [0, 1, 2], "y", "#000")]

    bars = svg.bar_chart(evil, [evil, "b", "c"], series)
    lines = svg.line_chart(evil, ["a", "b", "c"], series, unit=evil)

    for chart in (bars, lines):
        assert "<script>" not in chart
        assert "&lt;script&gt;" in chart
        assert '"red' not in chart
    assert bars.count("<rect") == 3  # the zeros and the missing value draw no bar
    assert lines.count("<polyline") == 2
    assert "<rect" not in svg.bar_chart("empty", ["a"], [svg.Series("s", [0], "s", "#000")])
