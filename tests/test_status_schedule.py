"""taskq_status shows each periodic schedule, and fails when one is overdue."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from taskq import schedule_entries
from taskq.models import Status, Task
from taskq.schedule import fire
from taskq.schedule_entries import entries
from taskq.status import take_snapshot
from taskq.status_text import render_text
from tests.helpers import run_status as status

pytestmark = pytest.mark.django_db

MINUTELY = {"minutely": {"task": "tests.testapp.periodic.tick", "every": 60}}
NOW = timezone.make_aware(datetime(2026, 5, 4, 12, 0, 30))


def fired(name: str, tick: datetime, status: Status = Status.SUCCEEDED) -> Task:
    """Write the firing row a pool would have written for ``tick``, moved on to ``status``."""
    [entry] = [e for e in entries() if e.name == name]
    task = fire(entry, tick, tick)
    assert task is not None
    Task.objects.filter(pk=task.pk).update(status=status)
    return task


@override_settings(TASKQ_SCHEDULE=MINUTELY)
def test_each_schedule_shows_its_last_and_next_run_and_skipped_ticks() -> None:
    older = fired("minutely", NOW - timedelta(minutes=5, seconds=30))
    last = fired("minutely", NOW - timedelta(seconds=30), Status.FAILED)
    snapshot = take_snapshot(NOW)
    [entry] = snapshot.as_json()["schedules"]
    assert entry == {
        "name": "minutely",
        "task": "tests.testapp.periodic.tick",
        "spec": "every 60s",
        "next_run": (NOW + timedelta(seconds=30)).isoformat(),
        "last_run": (NOW - timedelta(seconds=30)).isoformat(),
        "last_task_id": last.pk,
        "last_outcome": "failed",
        "skipped": 4,  # the ticks between the two firings
        "overdue": False,
    }
    assert older.pk != last.pk
    assert snapshot.problems() == []
    text = render_text(snapshot)
    assert "Schedules (1)" in text
    [row] = [line for line in text.splitlines() if line.startswith("  minutely")]
    assert row.split() == [
        "minutely", "tests.testapp.periodic.tick", "every", "60s", "in", "30.0", "s",
        "30.0", "s", "ago", str(last.pk), "failed", "4", "no",
    ]  # fmt: skip


@override_settings(TASKQ_SCHEDULE=MINUTELY)
def test_a_schedule_that_never_fired_is_shown_and_not_overdue() -> None:
    snapshot = take_snapshot(NOW)
    [entry] = snapshot.as_json()["schedules"]
    assert (entry["last_run"], entry["last_task_id"], entry["last_outcome"], entry["skipped"]) == (
        None,
        None,
        None,
        None,
    )
    assert entry["overdue"] is False
    [row] = [line for line in render_text(snapshot).splitlines() if line.startswith("  minutely")]
    assert row.split() == [
        "minutely", "tests.testapp.periodic.tick", "every", "60s", "in", "30.0", "s",
        "-", "-", "-", "-", "no",
    ]  # fmt: skip


@override_settings(TASKQ_SCHEDULE=MINUTELY)
def test_exit_1_once_a_schedule_is_late_by_more_than_its_period_plus_the_grace() -> None:
    now = timezone.now()
    # A firing on a minute boundary 55 to 115 s ago: the next tick (every 60 s falls on the
    # minute) is due about now, well within the grace. An unaligned tick 90 s ago would put
    # the next one anywhere from 30 to 90 s ago, overdue half the time.
    fired("minutely", datetime.fromtimestamp(math.ceil((now.timestamp() - 115) / 60) * 60, UTC))
    code, out, err = status("--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["schedules"][0]["overdue"] is False

    Task.objects.all().delete()
    fired("minutely", now - timedelta(minutes=3))
    code, out, err = status("--json")
    assert code == 1
    document = json.loads(out)
    assert document["healthy"] is False
    assert document["schedules"][0]["overdue"] is True
    assert document["schedule_grace_seconds"] == 60.0
    assert err.startswith("unhealthy: schedule 'minutely' (every 60s) is overdue: it last fired 3 min")
    code, out, _ = status()
    assert code == 1
    assert "OVERDUE" in out
    assert "Health: UNHEALTHY" in out


def test_without_a_schedule_the_report_has_no_schedules_section() -> None:
    code, out, _ = status()
    assert code == 0
    assert "Schedules" not in out
    code, out, _ = status("--json")
    assert json.loads(out)["schedules"] == []


def test_the_schedule_table_escapes_control_characters(settings: Any) -> None:
    name = "evil\x1b[2Jname"
    settings.TASKQ_SCHEDULE = {name: {"task": "tests.testapp.periodic.tick", "every": 60}}
    fired(name, timezone.now() - timedelta(minutes=10))
    code, out, err = status()
    assert code == 1
    assert "\x1b" not in out
    assert "evil\\x1b[2Jname" in out
    assert "\x1b" not in err
    code, out, _ = status("--json")
    assert json.loads(out)["schedules"][0]["name"] == name


def test_a_schedule_that_cannot_be_read_makes_the_report_unhealthy(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.TASKQ_SCHEDULE = MINUTELY

    def an_apps_tasks_module_fails(*args: Any) -> None:
        raise ImportError("shop.tasks failed to import")

    monkeypatch.setattr(schedule_entries, "autodiscover_modules", an_apps_tasks_module_fails)
    code, out, err = status()
    assert code == 1
    assert "Schedules (0)" in out
    assert err == "unhealthy: cannot read the schedule: ImportError: shop.tasks failed to import\n"
