"""manage.py taskq_prune: --older-than ages, --dry-run, batches, and the TASKQ_RETENTION default."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from taskq.management.commands.taskq_prune import parse_age
from taskq.models import Status, Task
from tests.test_retention import DAY, exists, finished_row, unfinished_rows

pytestmark = pytest.mark.django_db


def prune(*args: str) -> str:
    out = StringIO()
    call_command("taskq_prune", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * 86400),
        ("12h", 12 * 3600),
        ("30m", 1800),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("3600", 3600),
        ("1.5h", 5400),
        (" 0 ", 0),
        ("10D", 10 * 86400),
    ],
)
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d", "7x", "-1d", "1d2h", "seven days", "7 d"])
def test_bad_ages_say_what_is_expected(text: str) -> None:
    with pytest.raises(CommandError, match=r"is not an age: .* e\.g\. 7d, 12h, 30m or 3600"):
        prune(f"--older-than={text}")


def test_dry_run_counts_and_deletes_nothing() -> None:
    old = [finished_row(Status.SUCCEEDED), finished_row(Status.SUCCEEDED), finished_row(Status.FAILED)]
    finished_row(age=dt.timedelta(hours=1))
    unfinished_rows()
    out = prune("--older-than", "1d", "--dry-run")
    assert out.startswith("Would delete 3 finished tasks that finished before ")
    assert out.rstrip().endswith("(failed: 1, succeeded: 2).")
    assert all(exists(t) for t in old)
    assert Task.objects.count() == 6


def test_dry_run_with_nothing_to_delete() -> None:
    out = prune("--older-than", "30d", "--dry-run")
    assert out.startswith("Would delete 0 finished tasks")
    assert "(" not in out


def test_deletes_only_finished_tasks_older_than_the_age() -> None:
    old = [finished_row(s, age=3 * DAY) for s in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)]
    kept = [finished_row(age=dt.timedelta(hours=47)), *unfinished_rows()]
    out = prune("--older-than", "48h")
    assert out.startswith("Deleted 3 finished tasks that finished before ")
    assert not any(exists(t) for t in old)
    assert all(exists(t) for t in kept)


def test_deletes_a_backlog_in_batches_until_done(django_assert_num_queries: Any) -> None:
    for _ in range(5):
        finished_row()
    # Three batches of two (the last one short), each a SELECT of keys and a DELETE.
    with django_assert_num_queries(6):
        out = prune("--older-than", "1d", "--batch-size", "2")
    assert out.startswith("Deleted 5 ")
    assert not Task.objects.exists()


@pytest.mark.parametrize("size", ["0", "10001", "99999999999999999999", "1.5", "-3", "lots"])
def test_out_of_range_batch_size_is_refused(size: str) -> None:
    with pytest.raises(CommandError, match=f"a whole number from 1 to 10000, not '{re.escape(size)}'"):
        prune("--older-than", "1d", "--batch-size", size)


@pytest.mark.parametrize("size", [0, 10001, 10**20])
def test_out_of_range_batch_size_keyword_is_refused(size: int) -> None:
    with pytest.raises(
        CommandError, match=f"--batch-size: expected a whole number from 1 to 10000, not {size}"
    ):
        call_command("taskq_prune", older_than="1d", batch_size=size)


@pytest.mark.parametrize("age", ["800000d", "36501d", "5300w", "9" * 400])
def test_an_age_beyond_a_century_is_refused(age: str) -> None:
    finished_row(age=2 * DAY)
    with pytest.raises(CommandError, match=r"is out of range: give an age from 0 to 36500d \(100 years\)"):
        prune("--older-than", age)
    with pytest.raises(CommandError, match="out of range"):
        call_command("taskq_prune", older_than=dt.timedelta(days=800000))
    assert Task.objects.count() == 1


def test_a_century_is_the_oldest_age_allowed() -> None:
    finished_row(age=2 * DAY)
    assert prune("--older-than", "36500d").startswith("Deleted 0 ")


def test_the_age_defaults_to_the_retention_setting(settings: Any) -> None:
    settings.TASKQ_RETENTION = dt.timedelta(days=3)
    older, younger = finished_row(age=4 * DAY), finished_row(age=2 * DAY)
    assert prune().startswith("Deleted 1 ")
    assert not exists(older)
    assert exists(younger)


def test_without_retention_an_age_is_required(settings: Any) -> None:
    settings.TASKQ_RETENTION = None
    finished_row(age=3650 * DAY)
    with pytest.raises(CommandError, match="pass --older-than"):
        prune()
    assert Task.objects.count() == 1


def test_call_command_accepts_a_timedelta() -> None:
    finished_row(age=2 * DAY)
    out = StringIO()
    call_command("taskq_prune", older_than=DAY, stdout=out)
    assert out.getvalue().startswith("Deleted 1 ")
