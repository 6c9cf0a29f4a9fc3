"""taskq_status tells an operator what is going on: retries, progress, the failure rate, honest counts."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from taskq.models import Status, Task
from taskq.status import FAILURES_LIMIT, RETRYING_LIMIT, RETRYING_SCAN, take_snapshot
from taskq.status_text import clock, progress_bar, render_text
from tests.helpers import run_status as status
from tests.rows import make
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

NOW = timezone.make_aware(datetime(2026, 5, 4, 12, 0, 0))


def finish(status: Status, n: int, at: datetime, **fields: Any) -> None:
    """``n`` tasks that finished as ``status`` at ``at``."""
    pks = [make().pk for _ in range(n)]
    Task.objects.filter(pk__in=pks).update(
        status=status, attempts=1, started_at=at - timedelta(seconds=1), finished_at=at, **fields
    )


def retrying(run_after: datetime, attempts: int = 1, **fields: Any) -> Task:
    """A task that failed ``attempts`` times and waits in the queue for its next attempt."""
    return make(
        tasks.fail,
        "x",
        attempts=attempts,
        max_attempts=3,
        run_after=run_after,
        enqueued_at=run_after - timedelta(minutes=1),
        **{"error": "HTTPError: 503 Service Unavailable\nTraceback...", **fields},
    )


def running(progress: dict[str, Any] | None = None, attempts: int = 1) -> Task:
    return make(
        tasks.block,
        "x",
        status=Status.RUNNING,
        attempts=attempts,
        max_attempts=3,
        started_at=NOW - timedelta(seconds=20),
        worker="web-1:42:cafe",
        progress=progress,
    )


def report(
    done: float, total: float | None, note: str = "", age: float = 2, attempt: int = 1
) -> dict[str, Any]:
    """A value as current_task().progress() stores it, written ``age`` seconds before NOW."""
    at = (NOW - timedelta(seconds=age)).isoformat()
    return {"done": done, "total": total, "note": note, "at": at, "attempt": attempt}


def row(text: str, task: Task) -> str:
    [line] = [line for line in text.splitlines() if line.split()[:2] == [str(task.pk), task.path]]
    return line


def test_an_idle_queue_says_none_are_running_not_0_of_0() -> None:
    code, out, _ = status()
    assert code == 0
    assert "Running (0)\n  (none)" in out
    assert " of 0" not in out
    assert "Failed in the last hour (0)\n  (none)" in out
    assert "Failure rate in the last hour: - (no task succeeded or failed)" in out
    assert "Retrying" not in out


def test_a_cut_list_says_how_many_it_shows_of_how_many() -> None:
    finish(Status.FAILED, 13, timezone.now() - timedelta(minutes=5))
    _, out, _ = status()
    assert f"Failed in the last hour (latest {FAILURES_LIMIT} of 13)" in out
    failed = out[out.index("Failed in the last hour") : out.index("Live workers")]
    assert failed.count("tests.testapp.tasks.add") == FAILURES_LIMIT


def test_the_failure_rate_counts_tasks_that_succeeded_or_failed_in_the_last_hour() -> None:
    recently = timezone.now() - timedelta(minutes=10)
    finish(Status.FAILED, 13, recently)
    finish(Status.SUCCEEDED, 17, recently)
    finish(Status.CANCELLED, 20, recently)  # cancelled: neither
    finish(Status.FAILED, 50, timezone.now() - timedelta(hours=2))  # before the window
    retrying(
        timezone.now() + timedelta(minutes=1)
    )  # a failed attempt that will be retried: not yet an outcome

    code, out, err = status()
    assert (code, err) == (0, "")  # reported, but not judged without a threshold
    assert "Failure rate in the last hour: 43.3% (13 failed, 17 succeeded)" in out
    document = json.loads(status("--json")[1])
    failures = document["failures_last_hour"]
    assert (failures["total"], failures["succeeded"], failures["rate"]) == (13, 17, 0.4333)
    assert document["healthy"] is True


def test_exit_1_when_the_failure_rate_is_over_max_failure_rate() -> None:
    recently = timezone.now() - timedelta(minutes=10)
    finish(Status.FAILED, 13, recently)
    finish(Status.SUCCEEDED, 17, recently)

    code, out, err = status("--max-failure-rate", "0.4")
    assert code == 1
    message = "43.3% of the tasks finished in the last hour failed (13 of 30), over --max-failure-rate 0.4"
    assert err == f"unhealthy: {message}\n"
    assert "Failure rate in the last hour: 43.3% (13 failed, 17 succeeded); unhealthy above 40.0%" in out
    assert out.endswith(f"Health: UNHEALTHY\n  - {message}\n")
    code, out, _ = status("--json", "--max-failure-rate", "0.4")
    assert (code, json.loads(out)["healthy"], json.loads(out)["problems"]) == (1, False, [message])

    assert status("--max-failure-rate", "0.5")[0] == 0


def test_max_failure_rate_0_fails_on_any_failure_but_not_on_a_quiet_hour() -> None:
    assert status("--max-failure-rate", "0")[0] == 0  # nothing finished: no rate to judge
    finish(Status.SUCCEEDED, 3, timezone.now())
    assert status("--max-failure-rate", "0")[0] == 0
    finish(Status.FAILED, 1, timezone.now())
    code, _, err = status("--max-failure-rate", "0")
    assert code == 1
    assert "25.0% of the tasks finished in the last hour failed (1 of 4)" in err
    assert status("--max-failure-rate", "0.25")[0] == 0  # at the limit is not over it


@pytest.mark.parametrize("value", ["20", "-0.1", "1.01", "nan", "often"])
def test_max_failure_rate_is_a_fraction_from_0_to_1(value: str) -> None:
    message = f"--max-failure-rate: expected a number from 0 to 1, not {value!r}"
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("taskq_status", "--max-failure-rate", value)


def test_max_failure_rate_as_a_keyword_is_held_to_the_range_too() -> None:
    message = "--max-failure-rate: expected a number from 0 to 1, not 20; give a value in that range."
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("taskq_status", max_failure_rate=20)


def test_retrying_tasks_say_which_attempt_runs_next_and_when() -> None:
    later = retrying(NOW + timedelta(seconds=4))
    overdue = retrying(NOW - timedelta(seconds=10), attempts=2)
    make(run_after=NOW - timedelta(seconds=5))  # never ran: queued, not retrying
    make(tasks.fail, "x", status=Status.FAILED, attempts=3, finished_at=NOW)  # out of attempts

    snapshot = take_snapshot(NOW)
    text = render_text(snapshot)
    assert "Retrying (2)" in text
    assert re.split(r"\s{2,}", row(text, later))[-2:] == [
        "attempt 2 of 3 at 12:00:04 UTC (in 4.0 s)",
        "HTTPError: 503 Service Unavailable",
    ]
    assert "attempt 3 of 3 at 11:59:50 UTC (due 10.0 s ago)" in row(text, overdue)
    assert text.index(row(text, overdue)) < text.index(row(text, later))  # soonest first
    assert "Traceback" not in text

    assert snapshot.as_json()["retrying"] == {
        "total": 2,
        "among_next": None,
        "tasks": [
            {
                "id": overdue.pk,
                "path": "tests.testapp.tasks.fail",
                "queue": "default",
                "attempt": 3,
                "max_attempts": 3,
                "run_after": "2026-05-04T11:59:50+00:00",
                "seconds_until": -10.0,
                "error": "HTTPError: 503 Service Unavailable",
            },
            {
                "id": later.pk,
                "path": "tests.testapp.tasks.fail",
                "queue": "default",
                "attempt": 2,
                "max_attempts": 3,
                "run_after": "2026-05-04T12:00:04+00:00",
                "seconds_until": 4.0,
                "error": "HTTPError: 503 Service Unavailable",
            },
        ],
    }


def test_the_retrying_list_shows_the_next_few_among_the_next_queued() -> None:
    first = retrying(NOW + timedelta(seconds=1))
    for n in range(RETRYING_LIMIT + 1):
        retrying(NOW + timedelta(minutes=1, seconds=n))
    snapshot = take_snapshot(NOW)
    text = render_text(snapshot)
    assert f"Retrying (next {RETRYING_LIMIT} of {RETRYING_LIMIT + 2})" in text
    assert "in 1.0 s" in row(text, first)
    assert (snapshot.as_json()["retrying"]["total"], snapshot.as_json()["retrying"]["among_next"]) == (
        RETRYING_LIMIT + 2,
        None,  # every queued task was looked at
    )

    # A crowd of tasks that never ran, due before the other retries: only the first retry
    # is among the next RETRYING_SCAN queued tasks, and the report says so.
    template = Task.objects.get(pk=first.pk)
    Task.objects.bulk_create(
        Task(
            path=template.path,
            args=template.args,
            kwargs=template.kwargs,
            signature=template.signature,
            run_after=NOW + timedelta(seconds=30),
        )
        for _ in range(RETRYING_SCAN)
    )
    snapshot = take_snapshot(NOW)
    assert f"Retrying (1 among the next {RETRYING_SCAN} queued)" in render_text(snapshot)
    document = snapshot.as_json()["retrying"]
    assert (document["total"], document["among_next"]) == (1, RETRYING_SCAN)
    assert [t["id"] for t in document["tasks"]] == [first.pk]

    Task.objects.filter(pk=first.pk).update(attempts=0)
    text = render_text(take_snapshot(NOW))
    assert f"Retrying (0 among the next {RETRYING_SCAN} queued)\n  (none)" in text


def test_running_tasks_show_their_progress_and_attempt() -> None:
    halfway = running(report(5, 10, "pages", attempt=2), attempts=2)
    open_ended = running(report(7, None, "rows so far"))
    quiet = running(report(1, 4, age=150))
    silent = running()
    fractional = running(report(1, 3, age=2.34567))
    previous = running(report(9, 10, "last attempt's"), attempts=2)  # this attempt has not reported
    previous.progress = {**report(9, 10), "attempt": 1}
    Task.objects.filter(pk=previous.pk).update(progress=previous.progress)

    snapshot = take_snapshot(NOW)
    text = render_text(snapshot)
    assert row(text, halfway).endswith("web-1:42:cafe  2 of 3   [#####.....] 50.0% 5/10 pages")
    assert row(text, open_ended).endswith("1 of 3   7 done rows so far")
    assert row(text, quiet).endswith("[##........] 25.0% 1/4 (reported 2 min 30 s ago)")
    assert row(text, silent).endswith("1 of 3   -")
    assert row(text, previous).endswith("2 of 3   -")

    shown = {t["id"]: t for t in snapshot.as_json()["running"]["tasks"]}
    assert shown[halfway.pk]["progress"] == {
        "done": 5,
        "total": 10,
        "percent": 50.0,
        "note": "pages",
        "age": 2.0,
    }
    assert (shown[halfway.pk]["attempt"], shown[halfway.pk]["max_attempts"]) == (2, 3)
    assert shown[open_ended.pk]["progress"]["percent"] is None
    assert shown[silent.pk]["progress"] is None
    assert (shown[fractional.pk]["progress"]["percent"], shown[fractional.pk]["progress"]["age"]) == (
        33.3,
        2.346,
    )
    assert shown[previous.pk]["progress"] is None


def test_progress_and_retries_cost_no_query_per_task(django_assert_num_queries: Any) -> None:
    for n in range(5):
        running(report(n, 10, "x"))
        retrying(NOW + timedelta(seconds=n))
    # Counts, due, running, retrying, the last hour's aggregate, failures, workers.
    with django_assert_num_queries(7):
        snapshot = take_snapshot(NOW)
    assert len(snapshot.running) == len(snapshot.retrying) == 5


def test_a_progress_note_cannot_reach_the_terminal_raw() -> None:
    task = running(report(1, 2, "evil\x1b[2J\x9bnote"))
    text = render_text(take_snapshot(NOW))
    assert "\x1b" not in text
    assert "\x9b" not in text
    assert row(text, task).endswith(r"[#####.....] 50.0% 1/2 evil\x1b[2J\x9bnote")


@pytest.mark.parametrize(
    ("progress", "bar"),
    [
        (None, "-"),
        ({"done": 0, "total": 10, "percent": 0.0, "note": "", "age": 1.0}, "[..........] 0.0% 0/10"),
        (
            {"done": 999, "total": 1000, "percent": 99.9, "note": "", "age": 1.0},
            "[#########.] 99.9% 999/1000",
        ),
        ({"done": 12, "total": 10, "percent": 100.0, "note": "", "age": 1.0}, "[##########] 100.0% 12/10"),
        (
            {"done": 2.5, "total": 10.0, "percent": 25.0, "note": "MB", "age": 1.0},
            "[##........] 25.0% 2.5/10 MB",
        ),
        (
            {"done": 3, "total": None, "percent": None, "note": "", "age": 61.0},
            "3 done (reported 1 min 01 s ago)",
        ),
    ],
)
def test_progress_bar(progress: dict[str, Any] | None, bar: str) -> None:
    assert progress_bar(progress) == bar


@override_settings(TIME_ZONE="Europe/Berlin")
def test_times_show_seconds_and_the_zone() -> None:
    tomorrow = retrying(NOW + timedelta(hours=12, seconds=7))
    soon = retrying(NOW + timedelta(seconds=4))
    text = render_text(take_snapshot(NOW))
    assert text.startswith("taskq status at 2026-05-04 14:00:00 CEST\n")
    assert "attempt 2 of 3 at 14:00:04 CEST (in 4.0 s)" in row(text, soon)
    assert "attempt 2 of 3 at 2026-05-05 02:00:07 CEST (in 12 h 00 min)" in row(text, tomorrow)
    assert clock(NOW) == "2026-05-04 14:00:00 CEST"
    assert clock(NOW, NOW + timedelta(hours=1)) == "14:00:00 CEST"
