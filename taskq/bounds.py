"""Bounds on the text a task's failure may put in a row, a log line or a terminal."""

from __future__ import annotations

# An error is one line, short enough for a log line and a changelist cell.
MAX_ERROR_CHARS = 1000
# A traceback keeps its head (where the call started) and its tail (where it failed).
MAX_TRACEBACK_CHARS = 64 * 1024
# Each attempt in the history keeps a shorter traceback, so the row stays small.
MAX_HISTORY_TRACEBACK_CHARS = 8 * 1024
ELLIPSIS = " …"


def storable(text: str) -> str:
    """Return ``text`` with what a database refuses in a text column written out as escapes."""
    # PostgreSQL refuses NUL in text and JSON; no backend can encode a lone surrogate.
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Return ``text`` as one storable line of at most ``limit`` characters."""
    line = " ".join(storable(text).split())
    if len(line) <= limit:
        return line
    return line[: limit - len(ELLIPSIS)] + ELLIPSIS


def head_and_tail(text: str, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """Return storable ``text`` cut to ``limit`` characters, keeping its first and last parts."""
    text = storable(text)
    if len(text) <= limit:
        return text
    marker = f"\n… {len(text) - limit} characters cut …\n"
    keep = max(limit - len(marker), 0)
    head = keep // 4
    return text[:head] + marker + text[len(text) - (keep - head) :]
