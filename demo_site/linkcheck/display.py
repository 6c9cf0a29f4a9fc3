"""How the demo's pages write times, pools and a task's attempts for people to read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

OUTCOME_LABELS = {
    "succeeded": "Succeeded",
    "retried": "Failed, retried",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "timed_out": "Timed out",
    "lost": "Lost (its process died)",
}


def when(value: datetime | None) -> str:
    """A moment with its date, seconds and time zone: ``2026-12-06 03:18:12 UTC``."""
    return "" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def clock(value: datetime | None) -> str:
    """A moment's time of day with seconds and time zone: ``03:18:12 UTC``."""
    return "" if value is None else timezone.localtime(value).strftime("%H:%M:%S %Z")


def iso(value: datetime | None) -> str:
    """A moment as ISO 8601, for the page's script to count from."""
    return "" if value is None else value.isoformat()


def relative(value: datetime, now: datetime) -> str:
    """``12 s ago`` or ``in 4 s``: how far ``value`` is from ``now``, in the largest whole unit."""
    seconds = round((value - now).total_seconds())
    span = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if span >= size:
            amount = f"{span // size} {unit}"
            break
    else:
        amount = f"{span} s"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def pool(worker: str) -> str:
    """A pool's name (``host:pid:token``) as ``host, pid 123``; anything else as it is."""
    host, sep, _ = worker.rpartition(":")
    host, sep2, pid = host.rpartition(":")
    if sep and sep2 and pid.isdigit() and host:
        return f"{host}, pid {pid}"
    return worker


def seconds_between(start: datetime | None, end: datetime | None) -> str:
    """How long from ``start`` to ``end``, as ``1.2 s`` or ``35 ms``; empty if either is unknown."""
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def attempts(history: Any) -> list[dict[str, Any]]:
    """The task's finished attempts from ``Task.history``, oldest first, ready for the timeline."""
    rows = []
    for entry in history if isinstance(history, list) else []:
        if not isinstance(entry, dict):
            continue
        started = _moment(entry.get("started_at"))
        finished = _moment(entry.get("finished_at"))
        outcome = str(entry.get("outcome", ""))
        error = str(entry.get("error") or "")
        rows.append(
            {
                "attempt": entry.get("attempt"),
                "outcome": outcome,
                "outcome_label": OUTCOME_LABELS.get(outcome, outcome.replace("_", " ").capitalize()),
                "pool": pool(str(entry.get("worker") or "")),
                "started": clock(started),
                "started_iso": iso(started),
                "ran": seconds_between(started, finished),
                "error": error.splitlines()[0] if error else "",
            }
        )
    return rows


def _moment(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return parse_datetime(raw)
    except ValueError:
        return None
