"""How the task and pool admin pages draw a value: times, statuses, progress, pools and attempts.

Each helper takes what the row already holds and makes no query, so the changelist can call
them for every row on the page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from taskq.changelist import ARGS_HEAD_CHARS
from taskq.models import Status, Task, Worker
from taskq.status import format_duration

ARGS_SUMMARY_CHARS = 48  # what the changelist's argument column shows of the call
TRACEBACK_CHARS = 8000  # an attempt's traceback on the timeline keeps its last characters
TIMES_LEGEND = _(
    "Started is when the last attempt started. Waited runs from enqueue to that start, so it "
    "includes earlier attempts and the backoff between them. Ran is the last attempt alone; "
    "each attempt's own times are on the task's page, under Attempts."
)
OUTCOME_LABELS = {
    "succeeded": _("Succeeded"),
    "retried": _("Failed, retried"),
    "failed": _("Failed"),
    "cancelled": _("Cancelled"),
    "timed_out": _("Timed out"),
    "lost": _("Lost: its pool stopped"),
}


# Times ----------------------------------------------------------------------------------


def local(moment: datetime) -> datetime:
    """The moment in the current time zone; a naive one (USE_TZ = False) as it is."""
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


def stamp(moment: datetime) -> str:
    """The moment in the current time zone with seconds and the zone: 2026-12-06 05:31:02 UTC."""
    local_moment = local(moment)
    return f"{local_moment:%Y-%m-%d %H:%M:%S} {local_moment.tzname() or ''}".rstrip()


def clock(moment: datetime, now: datetime) -> str:
    """The time of day with seconds, and the date too when it is not today."""
    shown = local(moment)
    if shown.date() == local(now).date():
        return f"{shown:%H:%M:%S}"
    return f"{date_format(shown, 'M d')} {shown:%H:%M:%S}"


def relative(moment: datetime, now: datetime) -> str:
    """How far the moment is from now, in whole units: 12 s ago, in 4 s, 3 min ago."""
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= length:
            amount = f"{int(size // length)} {unit}"
            break
    else:
        amount = f"{int(size)} s"
    if seconds > 0.5:
        return gettext("in %(amount)s") % {"amount": amount}
    if size <= 0.5:
        return gettext("now")
    return gettext("%(amount)s ago") % {"amount": amount}


def when(moment: datetime | None, now: datetime, short: bool = False) -> SafeString | str:
    """A <time> element: the stamp with the relative time beside it, or (short) the clock alone."""
    if moment is None:
        return "-"
    if short:
        # A list's column has room for the clock alone; the rest is on hover.
        return format_html(
            '<time datetime="{}" title="{}, {}">{}</time>',
            moment.isoformat(),
            stamp(moment),
            relative(moment, now),
            clock(moment, now),
        )
    return format_html(
        '<time datetime="{}">{}</time> <span class="taskq-ago">({})</span>',
        moment.isoformat(),
        stamp(moment),
        relative(moment, now),
    )


def ago(moment: datetime, now: datetime) -> SafeString:
    """A <time> element that reads as the relative time, the stamp on hover."""
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', moment.isoformat(), stamp(moment), relative(moment, now)
    )


# Statuses -------------------------------------------------------------------------------


def badge(status: str, label: Any) -> SafeString:
    """A status badge that spells the status out; its colour only repeats the word."""
    return format_html('<span class="taskq-status taskq-status-{}">{}</span>', status, label)


def is_retrying(task: Task) -> bool:
    """Whether a queued task is waiting for another attempt after a failed one."""
    return task.status == Status.QUEUED and task.attempts > 0


def retry_note(task: Task, now: datetime) -> str:
    """What a task between attempts waits for: attempt 2 of 3 at 03:18:12 (in 4 s)."""
    return gettext("attempt %(next)d of %(max)d at %(clock)s (%(relative)s)") % {
        "next": task.attempts + 1,
        "max": task.max_attempts,
        "clock": clock(task.run_after, now),
        "relative": relative(task.run_after, now),
    }


def status(task: Task, now: datetime) -> SafeString:
    """The status badge, with the next attempt of a retrying task and the progress of a running one."""
    if is_retrying(task):
        return format_html(
            '<span class="taskq-state" title="{}">{} <span class="taskq-note">{}</span></span>',
            stamp(task.run_after),
            badge("retrying", gettext("Retrying")),
            retry_note(task, now),
        )
    label = task.get_status_display()
    if task.status == Status.RUNNING and task.cancel_requested:
        label = gettext("%(status)s (stopping)") % {"status": label}
    shown = badge(task.status, label)
    report = task.progress_for_display(now) if task.status == Status.RUNNING else None
    if report is None:
        return shown
    return format_html('<span class="taskq-state">{} {}</span>', shown, progress(report))


def progress(report: dict[str, Any]) -> SafeString:
    """A progress bar with its figures and the task's note; the note is cut to one line by CSS."""
    if report["percent"] is None:
        bar = mark_safe('<progress class="taskq-progress"></progress>')
        figures = gettext("%(done)s done") % {"done": _number(report["done"])}
    else:
        bar = format_html(
            '<progress class="taskq-progress" max="100" value="{}">{}%</progress>',
            report["percent"],
            report["percent"],
        )
        figures = f"{report['percent']:g}%"
    return format_html(
        '<span class="taskq-progress-box" title="{}">{} <span class="taskq-figures">{}</span>'
        ' <span class="taskq-progress-note">{}</span></span>',
        report["note"] or figures,
        bar,
        figures,
        report["note"],
    )


def _number(value: float) -> str:
    return f"{value:g}"


# The call and the pool ------------------------------------------------------------------


def function_name(path: str) -> SafeString:
    """The function's own name, with its whole dotted path on hover."""
    return format_html('<span class="taskq-function" title="{}">{}</span>', path, path.rpartition(".")[2])


def args_summary(args_head: str | None, kwargs_head: str | None) -> SafeString | str:
    """The call's arguments as a short line, from the first characters of their JSON text."""
    parts = []
    for head, empty in ((args_head, "[]"), (kwargs_head, "{}")):
        text = (head or "").strip()
        if not text or text == empty:
            continue
        if len(head or "") < ARGS_HEAD_CHARS:
            parts.append(text[1:-1])  # whole: drop the list's or the object's brackets
        else:
            parts.append(text[1:] + "…")  # cut short in the database
    if not parts:
        return ""
    whole = ", ".join(parts)
    return format_html(
        '<span class="taskq-args" title="{}">{}</span>',
        whole,
        Truncator(whole).chars(ARGS_SUMMARY_CHARS),
    )


def pool_parts(name: str) -> tuple[str, str]:
    """The host and pid in a pool's name, host:pid:id; the whole name when it has another shape."""
    host, _, rest = name.rpartition(":")
    host, _, pid = host.rpartition(":")
    if host and pid.isdigit() and rest:
        return host, pid
    return name, ""


def pool_short(name: str) -> SafeString | str:
    """A pool as host:pid, its whole name on hover."""
    if not name:
        return ""
    host, pid = pool_parts(name)
    shown = f"{host}:{pid}" if pid else host
    return format_html('<span class="taskq-pool" title="{}">{}</span>', name, shown)


def pool_long(name: str, live: Worker | None, now: datetime) -> SafeString | str:
    """A pool as host, pid and since when, from its Worker row while it lives."""
    if not name:
        return "-"
    if live is not None:
        return format_html(
            '<span title="{}">{}</span>',
            name,
            format_html(
                "{} &middot; {} {} &middot; {} {}",
                live.hostname,
                gettext("pid"),
                live.pid,
                gettext("running since"),
                when(live.started_at, now),
            ),
        )
    host, pid = pool_parts(name)
    return format_html(
        '<span title="{}">{}{} <span class="taskq-ago">{}</span></span>',
        name,
        host,
        format_html(" &middot; {} {}", gettext("pid"), pid) if pid else "",
        gettext("(this pool has stopped)"),
    )


# Text blocks ----------------------------------------------------------------------------


def pre(text: str) -> SafeString:
    """Text as it was written, in a block that wraps long lines."""
    return format_html('<pre class="taskq-pre">{}</pre>', text)


def tail(text: str) -> SafeString:
    """A block that opens scrolled to its end, so a traceback's final line is in sight."""
    return format_html('<div class="taskq-tail">{}</div>', pre(text))


def pretty_json(value: Any) -> SafeString:
    """A JSON value, indented, with keys in order."""
    return pre(json.dumps(value, indent=2, sort_keys=isinstance(value, dict), ensure_ascii=False))


# The attempt timeline -------------------------------------------------------------------


def timeline(task: Task, now: datetime) -> SafeString | str:
    """Every finished attempt, oldest first, then what the task is doing now."""
    items = [_attempt(entry, now) for entry in _entries(task.history)]
    current = _current(task, now)
    if current:
        items.append(current)
    if not items:
        return ""
    listed = format_html_join("", "{}", ((item,) for item in items))
    return format_html('<ol class="taskq-timeline">{}</ol>', listed)


def _entries(history: Any) -> Sequence[dict[str, Any]]:
    if not isinstance(history, list):
        return []
    return [entry for entry in history if isinstance(entry, dict)]


def _attempt(entry: dict[str, Any], now: datetime) -> SafeString:
    outcome = str(entry.get("outcome") or "")
    started, finished = _moment(entry.get("started_at")), _moment(entry.get("finished_at"))
    ran = format_duration(finished - started) if started and finished else "-"
    error, trace = str(entry.get("error") or ""), str(entry.get("traceback") or "")
    details = format_html(
        '<details class="taskq-trace"><summary>{}</summary>{}</details>',
        gettext("Traceback"),
        tail(trace[-TRACEBACK_CHARS:]),
    )
    return format_html(
        '<li class="taskq-attempt taskq-outcome-{}"><div class="taskq-attempt-head">'
        '<strong>{} {}</strong> {} <span class="taskq-attempt-pool">{}</span></div>'
        '<dl class="taskq-attempt-times"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>'
        "<dt>{}</dt><dd>{}</dd></dl>"
        "{}{}</li>",
        outcome or "unknown",
        gettext("Attempt"),
        entry.get("attempt", "?"),
        badge(outcome, OUTCOME_LABELS.get(outcome, outcome or gettext("unknown"))),
        pool_short(str(entry.get("worker") or "")),
        gettext("Started"),
        when(started, now),
        gettext("Finished"),
        when(finished, now),
        gettext("Ran"),
        ran,
        format_html('<p class="taskq-attempt-error">{}</p>', error) if error else "",
        details if trace else "",
    )


def _current(task: Task, now: datetime) -> SafeString | None:
    if task.status == Status.RUNNING:
        report = task.progress_for_display(now)
        return format_html(
            '<li class="taskq-attempt taskq-outcome-running"><div class="taskq-attempt-head">'
            '<strong>{} {}</strong> {} <span class="taskq-attempt-pool">{}</span></div>'
            '<dl class="taskq-attempt-times"><dt>{}</dt><dd>{}</dd></dl>{}</li>',
            gettext("Attempt"),
            task.attempts,
            badge(Status.RUNNING, gettext("Running now")),
            pool_short(task.worker),
            gettext("Started"),
            when(task.started_at, now),
            progress(report) if report else "",
        )
    if task.status == Status.QUEUED:
        note = retry_note(task, now) if is_retrying(task) else _("waiting for a free runner")
        return format_html(
            '<li class="taskq-attempt taskq-outcome-queued"><div class="taskq-attempt-head">'
            "<strong>{} {}</strong> {} {}</div></li>",
            gettext("Attempt"),
            task.attempts + 1,
            badge("retrying" if is_retrying(task) else Status.QUEUED, gettext("Next")),
            note,
        )
    return None


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
