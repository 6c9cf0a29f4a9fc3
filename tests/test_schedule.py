"""Periodic tasks without threads: entries, checks, ticks, and one scheduler round at an injected time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

import taskq
from taskq import schedule_entries, signing
from taskq.exceptions import InvalidTask
from taskq.models import Status, Task
from taskq.schedule import Scheduler, describe, fire, last_fired
from taskq.schedule_entries import Entry, check_schedule, parse
from tests.testapp import periodic

TICK = "tests.testapp.periodic.tick"
T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _empty_registry(empty_schedule_registry: None) -> None:
    """Every test here starts with no @periodic entries."""


def check_ids(schedule: Any) -> list[tuple[str, str]]:
    with override_settings(TASKQ_SCHEDULE=schedule):
        return [(m.id or "", m.msg) for m in check_schedule()]


# Checks -------------------------------------------------------------------------


def test_valid_entries_pass_the_checks() -> None:
    assert (
        check_ids(
            {
                "nightly": {"task": TICK, "cron": "0 3 * * *"},
                "rates": {
                    "task": "tests.testapp.periodic.greet",
                    "every": timedelta(minutes=5),
                    "args": ["x"],
                    "kwargs": {"punctuation": "?"},
                    "queue": "q",
                    "priority": 3,
                    "max_attempts": 2,
                    "timeout": 9,
                },
            }
        )
        == []
    )


@pytest.mark.parametrize(
    ("entry", "check_id", "says"),
    [
        ({"task": "tests.testapp.periodic.nowhere", "every": 1}, "taskq.E022", "nowhere"),
        ({"task": "no_such_module.f", "every": 1}, "taskq.E022", "no_such_module"),
        ({"every": 1}, "taskq.E022", "no 'task'"),
        ({"task": TICK, "every": 1, "cron": "* * * * *"}, "taskq.E023", "exactly one"),
        ({"task": TICK}, "taskq.E023", "exactly one"),
        ({"task": TICK, "cron": "61 * * * *"}, "taskq.E024", "Bad minute"),
        ({"task": TICK, "cron": "0 0 30 2 *"}, "taskq.E024", "Bad day-of-month"),
        ({"task": TICK, "cron": "* * * * * *"}, "taskq.E024", "five-field"),
        ({"task": TICK, "every": 0.5}, "taskq.E025", "at least 1"),
        ({"task": TICK, "every": 1.5}, "taskq.E025", "whole number"),
        ({"task": TICK, "every": "60"}, "taskq.E025", "seconds"),
        ({"task": TICK, "every": 1, "kwargs": {"when": datetime(2026, 1, 1)}}, "taskq.E026", "not JSON"),
        ({"task": TICK, "every": 1, "args": "abc"}, "taskq.E026", "must be a list"),
        ({"task": TICK, "every": 1, "kwarg": {}}, "taskq.E027", "unknown keys ['kwarg']"),
        ({"task": TICK, "every": 1, "max_attempts": 0}, "taskq.E028", "max_attempts"),
        ("0 3 * * *", "taskq.E021", "make it a dict"),
    ],
)
def test_checks_report_each_bad_entry_with_its_own_id(entry: Any, check_id: str, says: str) -> None:
    [(found_id, message)] = check_ids({"job": entry})
    assert found_id == check_id
    assert says in message
    assert message.startswith("schedule 'job'") or check_id == "taskq.E021"


def test_checks_report_a_schedule_that_is_not_a_dict_and_names_with_a_colon() -> None:
    assert [i for i, _ in check_ids([TICK])] == ["taskq.E021"]
    assert [i for i, _ in check_ids({"a:b": {"task": TICK, "every": 1}})] == ["taskq.E021"]


def test_a_schedule_setting_is_not_reported_as_unknown() -> None:
    from taskq.checks import check_settings

    with override_settings(TASKQ_SCHEDULE={"job": {"task": TICK, "every": 1}}):
        assert [m.id for m in check_settings()] == []


# The decorator ------------------------------------------------------------------


def test_periodic_registers_the_function_under_its_path_and_returns_it_unchanged() -> None:
    assert taskq.periodic(cron="*/5 * * * *")(periodic.tick) is periodic.tick
    assert schedule_entries.registry == {TICK: {"task": TICK, "cron": "*/5 * * * *"}}
    [entry] = schedule_entries.entries()
    assert (entry.name, entry.path, entry.spec) == (TICK, TICK, "cron */5 * * * *")
    assert check_ids({}) == []


def test_a_settings_entry_of_the_same_name_replaces_a_decorated_one() -> None:
    taskq.periodic(every=60)(periodic.tick)
    with override_settings(TASKQ_SCHEDULE={TICK: {"task": TICK, "every": 5}}):
        assert [e.every for e in schedule_entries.entries()] == [5]


def test_periodic_refuses_a_function_that_needs_arguments_and_a_bad_spec() -> None:
    with pytest.raises(InvalidTask, match="takes arguments"):
        taskq.periodic(every=60)(periodic.needs_an_argument)
    with pytest.raises(InvalidTask, match="exactly one"):
        taskq.periodic()(periodic.tick)
    with pytest.raises(InvalidTask, match="Bad hour"):
        taskq.periodic(cron="0 25 * * *")(periodic.tick)
    assert schedule_entries.registry == {}


# Ticks --------------------------------------------------------------------------


def test_every_ticks_are_aligned_to_the_epoch_so_every_process_agrees() -> None:
    entry = parse("e", {"task": TICK, "every": 300})
    assert entry.next_after(T0 + timedelta(seconds=1)) == T0 + timedelta(minutes=5)
    assert entry.next_after(T0) == T0 + timedelta(minutes=5)
    assert entry.ticks_between(T0, T0 + timedelta(minutes=61)) == (T0 + timedelta(minutes=60), 12)
    assert entry.ticks_between(T0, T0 + timedelta(seconds=299)) == (None, 0)
    assert entry.uid(T0) == "schedule:e:2026-12-06T10:00:00Z"


@override_settings(TIME_ZONE="Europe/Riga")
def test_cron_follows_the_wall_clock_of_time_zone_across_dst_as_cron_does() -> None:
    entry = parse("n", {"task": TICK, "cron": "30 3 * * *"})
    # 2026-03-29: Riga skips 03:00-04:00 local; the job runs right after the jump.
    before = datetime(2026, 3, 28, 12, tzinfo=UTC)
    spring = entry.next_after(before)
    assert spring == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 04:00 EEST
    assert entry.next_after(spring) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 03:30 EEST
    # 2026-10-25: 03:00-04:00 local happens twice; the job runs once.
    autumn = entry.next_after(datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 03:30, EEST
    assert entry.next_after(autumn) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 03:30 EET


def test_a_long_cron_backlog_is_counted_up_to_the_limit_and_still_finds_the_newest_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedule_entries, "COUNT_LIMIT", 100)
    entry = parse("m", {"task": TICK, "cron": "* * * * *"})
    newest, count = entry.ticks_between(T0, T0 + timedelta(days=3, seconds=30))
    assert (newest, count) == (T0 + timedelta(days=3), 100)


# One scheduler round at an injected time ----------------------------------------


def entry_for(**raw: Any) -> Entry:
    return parse("job", {"task": TICK, **raw})


def uids() -> list[str]:
    return sorted(str(uid) for uid in Task.objects.exclude(uid=None).values_list("uid", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_due_tick_becomes_one_signed_row_with_the_entrys_options() -> None:
    entry = parse(
        "greet",
        {
            "task": "tests.testapp.periodic.greet",
            "every": 60,
            "args": ["ann"],
            "queue": "periodic",
            "priority": 7,
            "max_attempts": 2,
            "timeout": 30,
        },
    )
    scheduler = Scheduler("test", lambda: None, clock=lambda: T0)
    assert scheduler.run_due([entry], T0 - timedelta(seconds=30)) == pytest.approx(30.001)
    assert Task.objects.count() == 0
    scheduler.run_due([entry], T0 + timedelta(seconds=0.2))
    task = Task.objects.get()
    assert task.uid == "schedule:greet:2026-12-06T10:00:00Z"
    assert (task.path, task.args, task.kwargs) == ("tests.testapp.periodic.greet", ["ann"], {})
    assert (task.queue, task.priority, task.max_attempts, task.timeout) == ("periodic", 7, 2, 30)
    assert task.run_after == T0
    assert task.status == Status.QUEUED
    assert signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature)


@pytest.mark.django_db(transaction=True)
def test_a_second_scheduler_noticing_the_same_tick_inserts_nothing_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = entry_for(every=60)
    first, second = (Scheduler(n, lambda: None) for n in ("a", "b"))
    first.run_due([entry], T0 - timedelta(seconds=1))
    second.run_due([entry], T0 - timedelta(seconds=1))
    with caplog.at_level(logging.DEBUG, logger="taskq"):
        first.run_due([entry], T0 + timedelta(seconds=0.1))
        second.run_due([entry], T0 + timedelta(seconds=0.3))
    assert uids() == ["schedule:job:2026-12-06T10:00:00Z"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.django_db(transaction=True)
def test_losing_the_race_inside_a_callers_transaction_leaves_the_transaction_usable() -> None:
    entry = entry_for(every=60)
    with transaction.atomic():
        assert fire(entry, T0, T0) is not None
        assert fire(entry, T0, T0) is None
        assert Task.objects.count() == 1  # PostgreSQL would refuse this after an unguarded error
    assert uids() == ["schedule:job:2026-12-06T10:00:00Z"]


@pytest.mark.django_db(transaction=True)
def test_ticks_late_by_jitter_each_fire() -> None:
    entry = entry_for(every=1)
    scheduler = Scheduler("s", lambda: None)
    scheduler.run_due([entry], T0 - timedelta(seconds=0.5))
    scheduler.run_due([entry], T0 + timedelta(seconds=2.5))
    assert uids() == [f"schedule:job:2026-12-06T10:00:0{i}Z" for i in range(3)]


@pytest.mark.django_db(transaction=True)
def test_after_downtime_only_the_newest_missed_tick_fires_and_the_skip_is_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = entry_for(every=60)
    fire(entry, T0, T0)
    # A fresh process, as after a restart: it resumes after the newest firing in the database.
    woke = []
    scheduler = Scheduler("restarted", lambda: woke.append(1))
    with caplog.at_level(logging.WARNING, logger="taskq"):
        wait = scheduler.run_due([entry], T0 + timedelta(minutes=10, seconds=20))
    assert uids() == ["schedule:job:2026-12-06T10:00:00Z", "schedule:job:2026-12-06T10:10:00Z"]
    assert wait == pytest.approx(40.001)
    assert woke == [1]
    [record] = [r for r in caplog.records if "ticks_missed" in r.getMessage()]
    assert "missed=9" in record.getMessage()
    with override_settings(TASKQ_SCHEDULE={"job": {"task": TICK, "every": 60}}):
        [state] = describe(T0 + timedelta(minutes=10, seconds=20))
    assert (state.last_run, state.skipped, state.overdue) == (T0 + timedelta(minutes=10), 9, False)


@pytest.mark.django_db(transaction=True)
def test_a_cron_backlog_fires_once_for_its_newest_tick() -> None:
    entry = entry_for(cron="*/5 * * * *")
    fire(entry, T0, T0)
    Scheduler("s", lambda: None).run_due([entry], T0 + timedelta(hours=1, minutes=2))
    assert uids()[-1] == "schedule:job:2026-12-06T11:00:00Z"
    assert len(uids()) == 2


@pytest.mark.django_db(transaction=True)
def test_a_new_schedule_waits_for_its_first_tick() -> None:
    entry = entry_for(cron="0 3 * * *")
    scheduler = Scheduler("s", lambda: None)
    wait = scheduler.run_due([entry], T0)
    assert Task.objects.count() == 0
    assert wait == 60.001  # capped, so a stepped clock is noticed


@pytest.mark.django_db(transaction=True)
def test_describe_reports_next_and_last_run_outcome_and_overdue() -> None:
    schedule = {"job": {"task": TICK, "every": 60}, "other": {"task": TICK, "cron": "0 3 * * *"}}
    entry = entry_for(every=60)
    first = fire(entry, T0, T0)
    assert first is not None
    Task.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED)
    with override_settings(TASKQ_SCHEDULE=schedule):
        job, other = describe(T0 + timedelta(seconds=30))
        late = describe(T0 + timedelta(minutes=2, seconds=1))[0]
    assert (job.name, job.task, job.spec) == ("job", TICK, "every 60s")
    assert (job.next_run, job.last_run, job.last_task_id) == (T0 + timedelta(minutes=1), T0, first.pk)
    assert (job.last_outcome, job.skipped, job.overdue) == ("succeeded", None, False)
    assert late.overdue  # the 10:01 tick is more than the minute's grace late
    assert (other.last_run, other.last_outcome, other.overdue) == (None, None, False)
    assert other.next_run == datetime(2026, 12, 7, 3, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_last_fired_reads_only_its_own_schedule() -> None:
    fire(parse("a", {"task": TICK, "every": 60}), T0, T0)
    fire(parse("a1", {"task": TICK, "every": 60}), T0 + timedelta(minutes=5), T0)
    fire(parse("a-b", {"task": TICK, "every": 60}), T0 + timedelta(minutes=9), T0)
    [row] = last_fired(parse("a", {"task": TICK, "every": 60}), 5)
    assert row.uid == "schedule:a:2026-12-06T10:00:00Z"


@pytest.mark.django_db(transaction=True)
def test_an_entry_that_fails_to_fire_backs_off_without_holding_up_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = parse("broken", {"task": "tests.testapp.periodic.nowhere", "every": 1}, resolve=False)
    working = entry_for(every=1)
    scheduler = Scheduler("s", lambda: None)
    scheduler.run_due([broken, working], T0 - timedelta(seconds=0.5))
    with caplog.at_level(logging.ERROR, logger="taskq"):
        wait = scheduler.run_due([broken, working], T0 + timedelta(seconds=0.1))
        assert scheduler.run_due([broken, working], T0 + timedelta(seconds=0.3)) == pytest.approx(0.301)
    assert uids() == ["schedule:job:2026-12-06T10:00:00Z"]
    assert wait == pytest.approx(0.501)  # the broken entry's retry comes before the next tick
    assert len([r for r in caplog.records if "event=schedule_error" in r.getMessage()]) == 1
