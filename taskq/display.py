"""How taskq writes figures and task text for people: durations, percentages, error lines, escapes."""

from __future__ import annotations

from datetime import timedelta


def first_line(text: str, limit: int = 200) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    return clip(text.strip().split("\n", 1)[0].strip(), limit)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(seconds: float | timedelta | None) -> str:
    """A short human reading of a duration: 350 ms, 4.2 s, 3 min 05 s, 2 h 03 min, 3 d 04 h."""
    if seconds is None:
        return "-"
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def format_percent(fraction: float) -> str:
    """``fraction`` as a percentage to a tenth: 0.4333 -> 43.3%."""
    return f"{100 * fraction:.1f}%"


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on (C0, DEL, C1...) written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
