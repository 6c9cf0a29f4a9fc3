"""taskq_status: the snapshot's queries, its table and JSON, the exit status, and --watch."""

from __future__ import annotations

import json
import re
import signal
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from taskq.display import first_line, format_duration, printable
from taskq.management.commands.taskq_status import CLEAR
from taskq.models import Status, Task, Worker
from taskq.status import take_snapshot
from taskq.status_text import render_text
from tests import processes
from tests.helpers import run_status as status
from tests.helpers import worker_row
from tests.rows import make
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

NOW = timezone.make_aware(datetime(2026, 5, 4, 12, 0, 0))


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def done(status: Status, finished: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "status": status,
        "attempts": 1,
        "started_at": finished - timedelta(seconds=2),
        "finished_at": finished,
        **fields,
    }


def heartbeat(name: str, seen: datetime, queues: list[str] | None = None) -> Worker:
    return worker_row(name, seen=seen, queues=queues, started_at=seen - timedelta(hours=2))


@pytest.fixture
def known() -> dict[str, Any]:
    """A small queue whose every figure the tests can work out by hand."""
    rows = {
        "due": make(run_after=ago(seconds=30), enqueued_at=ago(seconds=30)),
        "due2": make(run_after=ago(seconds=10), enqueued_at=ago(seconds=10)),
        "later": make(run_after=NOW + timedelta(hours=1), enqueued_at=ago(seconds=5)),
        "running": make(
            tasks.block,
            "x",
            status=Status.RUNNING,
            attempts=1,
            started_at=ago(seconds=5),
            worker="web-1:42:cafe",
        ),
        "ok_30s": make(**done(Status.SUCCEEDED, ago(seconds=30))),
        "ok_4m": make(**done(Status.SUCCEEDED, ago(minutes=4))),
        "ok_10m": make(**done(Status.SUCCEEDED, ago(minutes=10))),
        "ok_20m": make(**done(Status.SUCCEEDED, ago(minutes=20))),
        "failed": make(
            tasks.fail,
            "boom",
            **done(Status.FAILED, ago(minutes=2), error="ValueError: boom\nsecond line"),
        ),
        "failed_old": make(tasks.fail, "old", **done(Status.FAILED, ago(hours=2), error="ValueError: old")),
        "mail_due": make(queue="mail", run_after=ago(seconds=100), enqueued_at=ago(seconds=100)),
        "mail_cancelled": make(queue="mail", status=Status.CANCELLED, finished_at=ago(minutes=3)),
    }
    heartbeat("web-1:42:cafe", ago(seconds=3))
    heartbeat("web-9:99:dead", ago(minutes=5))  # two heartbeats (2 x 15 s) missed: gone
    return rows


def test_snapshot_costs_seven_queries(known: dict[str, Any], django_assert_num_queries: Any) -> None:
    # The seventh finds the retrying tasks among the next queued: (status, run_after) with a LIMIT.
    with django_assert_num_queries(7):
        take_snapshot(NOW)


def test_table_on_a_known_queue(known: dict[str, Any]) -> None:
    text = render_text(take_snapshot(NOW))
    running, failed = known["running"].pk, known["failed"].pk

    assert text.splitlines()[:7] == [
        "taskq status at 2026-05-04 12:00:00 UTC",
        "",
        "  Queue    Queued  Due  Running  Succeeded  Failed  Cancelled  Lag",
        "  default       3    2        1          4       2          0  30.0 s",
        "  mail          1    1        0          0       0          1  1 min 40 s",
        "  (all)         4    3        1          4       2          1  1 min 40 s",
        "",
    ]
    assert "Throughput (tasks finished): 1 in the last 1m, 4 in the last 5m, 5 in the last 15m" in text
    assert f"  {running}  tests.testapp.tasks.block  default  5.0 s        web-1:42:cafe" in text
    assert "Failed in the last hour (1)" in text
    assert f"  {failed}  tests.testapp.tasks.fail  default  2 min 00 s  ValueError: boom" in text
    assert "Live workers (1)" in text
    assert "  web-1   42        4  all     3.0 s ago  2 h 00 min" in text
    live, stale = text.index("Live workers"), text.index("Stale workers (1): no heartbeat for over 30.0 s")
    assert live < text.index("  web-1   42") < stale < text.index("  web-9   99")
    assert "  web-9   99        4  all     5 min 00 s ago  2 h 05 min" in text
    assert text.endswith("Health: OK")


def test_json_has_a_stable_schema(known: dict[str, Any]) -> None:
    document = json.loads(json.dumps(take_snapshot(NOW).as_json(max_lag=60)))

    assert list(document) == [
        "schema",
        "at",
        "healthy",
        "problems",
        "lag_seconds",
        "totals",
        "queues",
        "running",
        "retrying",
        "failures_last_hour",
        "throughput",
        "workers",
        "stale_after_seconds",
        "stale_workers",
        "schedule_grace_seconds",
        "schedules",
    ]
    assert document["schema"] == 1
    assert document["at"] == "2026-05-04T12:00:00+00:00"
    assert document["healthy"] is False
    assert document["problems"] == ["the oldest due task has waited 1 min 40 s, over --max-lag 60s"]
    assert document["lag_seconds"] == 100.0
    assert document["totals"] == {"queued": 4, "running": 1, "succeeded": 4, "failed": 2, "cancelled": 1}
    assert document["queues"]["mail"] == {
        "queued": 1,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 1,
        "due": 1,
        "lag_seconds": 100.0,
    }
    assert document["running"] == {
        "total": 1,
        "tasks": [
            {
                "id": known["running"].pk,
                "path": "tests.testapp.tasks.block",
                "queue": "default",
                "worker": "web-1:42:cafe",
                "started_at": "2026-05-04T11:59:55+00:00",
                "seconds": 5.0,
                "attempt": 1,
                "max_attempts": 3,
                "progress": None,
            }
        ],
    }
    assert document["retrying"] == {"total": 0, "among_next": None, "tasks": []}
    assert document["failures_last_hour"] == {
        "total": 1,
        "succeeded": 4,
        "rate": 0.2,
        "tasks": [
            {
                "id": known["failed"].pk,
                "path": "tests.testapp.tasks.fail",
                "queue": "default",
                "finished_at": "2026-05-04T11:58:00+00:00",
                "error": "ValueError: boom",
            }
        ],
    }
    assert document["throughput"] == {"1m": 1, "5m": 4, "15m": 5}
    assert document["workers"] == [
        {
            "name": "web-1:42:cafe",
            "hostname": "web-1",
            "pid": 42,
            "threads": 4,
            "queues": None,
            "started_at": "2026-05-04T09:59:57+00:00",
            "last_heartbeat": "2026-05-04T11:59:57+00:00",
            "heartbeat_age_seconds": 3.0,
        }
    ]
    assert document["stale_after_seconds"] == 30.0
    assert [(w["name"], w["heartbeat_age_seconds"]) for w in document["stale_workers"]] == [
        ("web-9:99:dead", 300.0)
    ]


def test_an_empty_queue_is_healthy() -> None:
    out = StringIO()
    call_command("taskq_status", "--json", "--max-lag", "1", stdout=out)
    document = json.loads(out.getvalue())
    assert (document["healthy"], document["lag_seconds"], document["queues"]) == (True, None, {})
    assert document["totals"] == dict.fromkeys(["queued", "running", "succeeded", "failed", "cancelled"], 0)
    text = StringIO()
    call_command("taskq_status", stdout=text)
    assert text.getvalue().count("(none)") == 3  # running, failures, workers


def test_exit_0_while_a_live_worker_keeps_up() -> None:
    make(run_after=timezone.now() - timedelta(seconds=2))
    heartbeat("web-1:42:cafe", timezone.now())
    code, out, err = status("--max-lag", "60")
    assert (code, err) == (0, "")
    assert out.endswith("Health: OK\n")


def test_exit_1_when_due_tasks_wait_longer_than_max_lag() -> None:
    make(run_after=timezone.now() - timedelta(seconds=90))
    heartbeat("web-1:42:cafe", timezone.now())
    assert status()[0] == 0  # no threshold, no lag check
    code, out, err = status("--max-lag", "60")
    assert code == 1
    assert err.startswith("unhealthy: the oldest due task has waited 1 min 30 s, over --max-lag 60s")
    assert "Health: UNHEALTHY" in out


def test_exit_1_when_tasks_are_due_and_no_live_worker_heartbeats() -> None:
    make(run_after=timezone.now() + timedelta(hours=1))
    assert status()[0] == 0  # nothing is due yet, so nobody is missed
    make()
    heartbeat("web-9:99:dead", timezone.now() - timedelta(minutes=5))
    code, _, err = status()
    assert code == 1
    assert err == "unhealthy: 1 due task(s) wait and no live worker heartbeats\n"

    heartbeat("web-1:42:cafe", timezone.now())  # now one is alive and shown
    code, out, err = status()
    assert (code, err) == (0, "")
    assert (
        out.index("Live workers (1)")
        < out.index("web-1")
        < out.index("Stale workers (1)")
        < out.index("web-9")
    )


def test_exit_1_when_no_live_worker_serves_a_queue_with_due_tasks() -> None:
    make(queue="reports")
    heartbeat("web-1:42:cafe", timezone.now(), queues=["mail"])
    code, out, err = status("--json")
    assert code == 1
    assert err == "unhealthy: 1 due task(s) wait in queue 'reports' and no live worker serves it\n"
    assert json.loads(out)["workers"][0]["queues"] == ["mail"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--watch", "0"], "a number of seconds from 0.1 to 86400, not '0'"),
        (["--watch", "1e-9"], "a number of seconds from 0.1 to 86400, not '1e-9'"),
        (["--watch", "inf"], "a number of seconds from 0.1 to 86400, not 'inf'"),
        (["--watch", "nan"], "a number of seconds from 0.1 to 86400, not 'nan'"),
        (["--max-lag", "soon"], "a number of seconds from 0.001 to 31536000, not 'soon'"),
        (["--max-lag", "nan"], "a number of seconds from 0.001 to 31536000, not 'nan'"),
        (["--max-lag=-inf"], "a number of seconds from 0.001 to 31536000, not '-inf'"),
        (["--max-lag", "1e999"], "a number of seconds from 0.001 to 31536000, not '1e999'"),
    ],
)
def test_bad_flags_say_what_is_expected(flags: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("taskq_status", *flags)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"watch": float("inf")}, "--watch: expected a number of seconds from 0.1 to 86400, not inf"),
        ({"watch": 1e-9}, "--watch: expected a number of seconds from 0.1 to 86400, not 1e-09"),
        ({"max_lag": 0}, "--max-lag: expected a number of seconds from 0.001 to 31536000, not 0"),
    ],
)
def test_out_of_range_keywords_are_refused_too(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message + "; give a value in that range.")):
        call_command("taskq_status", **options)


class Terminal(StringIO):
    """Output that says it is a terminal, as a shell's stdout would."""

    def isatty(self) -> bool:
        return True


class CtrlCAfterFrames(Terminal):
    """A terminal whose user presses Ctrl-C once a few frames have been drawn."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames_left = frames

    def write(self, text: str) -> int:
        written = super().write(text)
        if text.strip():
            self.frames_left -= 1
            if self.frames_left == 0:
                # A real SIGINT to this process's main thread. Sending it here, between
                # frames, rather than from a timer keeps it from landing mid-query, which
                # would leave the test's own database connection unusable.
                signal.raise_signal(signal.SIGINT)
        return written


def watch_until_ctrl_c(*flags: str) -> str:
    out = CtrlCAfterFrames(3)
    call_command("taskq_status", "--watch", "0.1", *flags, stdout=out)
    return out.getvalue()


def test_watch_prints_json_lines_until_ctrl_c(transactional_db: None) -> None:
    make()
    frames = [json.loads(line) for line in watch_until_ctrl_c("--json").splitlines() if line]
    assert len(frames) >= 2
    assert {frame["totals"]["queued"] for frame in frames} == {1}


def test_watch_redraws_in_place_on_a_terminal(transactional_db: None) -> None:
    make()
    frames = watch_until_ctrl_c().split(CLEAR)
    assert frames[0] == ""
    assert len(frames) >= 3
    assert all(frame.startswith("taskq status at") for frame in frames[1:])


def test_watch_redraws_the_table_until_sigint(transactional_db: None) -> None:
    make()
    with processes.started("taskq_status", "--watch", "0.1") as watcher:
        frames = 0
        while frames < 2:
            line = watcher.stdout.readline() if watcher.stdout else ""
            assert line, "taskq_status --watch stopped writing"
            frames += line.startswith("taskq status at")
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.35, "350 ms"),
        (4.25, "4.2 s"),
        (185, "3 min 05 s"),
        (timedelta(hours=2, minutes=3, seconds=59), "2 h 03 min"),
        (timedelta(days=3, hours=4), "3 d 04 h"),
    ],
)
def test_format_duration(seconds: float | timedelta | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_first_line() -> None:
    assert first_line("\n  ValueError: x  \nmore") == "ValueError: x"
    assert first_line("x" * 300, limit=10) == "xxxxxxxxx…"


@pytest.mark.parametrize(("lease", "age", "stale"), [(60.0, 29, False), (60.0, 31, True), (20.0, 11, True)])
def test_a_pool_is_stale_after_two_missed_heartbeats(
    settings: Any, lease: float, age: float, stale: bool
) -> None:
    settings.TASKQ_LEASE_SECONDS = lease  # heartbeats come every lease / 4
    make()
    heartbeat("web-1:42:cafe", timezone.now() - timedelta(seconds=age))
    code, out, _ = status("--json")
    document = json.loads(out)
    assert document["stale_after_seconds"] == lease / 2
    assert [w["name"] for w in document["stale_workers"]] == (["web-1:42:cafe"] if stale else [])
    assert [w["name"] for w in document["workers"]] == ([] if stale else ["web-1:42:cafe"])
    assert (code, document["healthy"]) == ((1, False) if stale else (0, True))


def test_a_stale_pool_is_not_counted_live_even_before_its_lease_lapses() -> None:
    make()
    heartbeat("web-1:42:gone", timezone.now() - timedelta(seconds=45))  # inside the 60 s lease
    code, out, err = status()
    assert code == 1
    assert err == "unhealthy: 1 due task(s) wait and no live worker heartbeats\n"
    assert "Live workers (0)" in out
    assert "Stale workers (1): no heartbeat for over 30.0 s; gone or stuck" in out


# Everything a terminal could act on: C0 (but newline, which the table itself writes), DEL and C1.
UNSAFE = {chr(c) for c in [*range(0x00, 0x0A), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]}
# No NUL: PostgreSQL refuses it in text, so no task can carry one.
HOSTILE = "\x1b]0;pwned\x07\r\x1b[2J\x9b31m\t\x7f\x85"


def test_the_table_escapes_control_characters_from_task_data() -> None:
    failed = make(
        tasks.fail,
        "x",
        queue="q" + HOSTILE,
        **done(Status.FAILED, timezone.now(), error=f"Boom{HOSTILE}!\nsecond line", path="p" + HOSTILE),
    )
    make(
        tasks.block,
        "x",
        queue="q" + HOSTILE,
        status=Status.RUNNING,
        attempts=1,
        started_at=timezone.now(),
        worker="w" + HOSTILE,
    )
    heartbeat("h" + HOSTILE.replace(":", "") + ":42:cafe", timezone.now(), queues=["q" + HOSTILE])
    heartbeat("old:43:dead", timezone.now() - timedelta(hours=1), queues=["q" + HOSTILE])
    _, out, err = status()

    assert not UNSAFE & set(out + err)
    shown = r"\x1b]0;pwned\x07\r\x1b[2J\x9b31m\t\x7f\x85"
    assert f"Boom{shown}!" in out
    assert f"p{shown}" in out
    assert f"q{shown}" in out
    assert f"w{shown}" in out
    assert f"h{shown}" in out
    assert "second line" not in out
    assert Task.objects.get(pk=failed.pk).error.startswith("Boom\x1b]0;")  # stored as it came


def test_printable_escapes_every_control_character_and_keeps_the_rest() -> None:
    text = "".join(sorted(UNSAFE)) + "\n"
    assert not (UNSAFE | {"\n"}) & set(printable(text))
    assert printable("\x1b[2J\x00\n") == r"\x1b[2J\x00\n"
    assert printable("Grüße, ok: 1 → 2") == "Grüße, ok: 1 → 2"


@pytest.mark.parametrize("error", ["E" * 5000, "\x1b" * 5000, "x\r" * 3000])
def test_an_error_is_shown_as_one_line_of_at_most_1000_characters(error: str) -> None:
    make(tasks.fail, "x", **done(Status.FAILED, timezone.now(), error=error + "\nnext line"))
    _, out, _ = status()
    [line] = [line for line in out.splitlines() if "tests.testapp.tasks.fail" in line]
    shown = line.split("  ")[-1]
    assert 900 < len(shown) <= 1000
    assert shown.endswith("…")
    assert "next line" not in out
    document = json.loads(status("--json")[1])
    assert len(document["failures_last_hour"]["tasks"][0]["error"]) <= 1000
