"""The task bodies every system runs: optionally wait (a stand-in for an API call), then write."""

from __future__ import annotations

import threading
import time

from django.db import connections

from bench.benchapp.models import Item

# Thread-per-task systems take a slot before starting a thread and give it back here.
SLOTS = threading.BoundedSemaphore(8)
# What the bare threads raised: nobody else would ever see it.
FAILURES: list[str] = []


def write(n: int, t_enq: float, wait: float = 0.0) -> None:
    """Wait ``wait`` seconds, then record this task in one INSERT."""
    t_start = time.time()
    if wait:
        time.sleep(wait)
    Item.objects.create(n=n, t_enq=t_enq, t_start=t_start, t_done=time.time())


def write_in_thread(n: int, t_enq: float, wait: float = 0.0, close: bool = False) -> None:
    """A thread's body: the write; with ``close``, the seed post's fix of closing its connections."""
    try:
        write(n, t_enq, wait)
    except Exception as exc:
        FAILURES.append(f"{type(exc).__name__}: {exc}")
    finally:
        if close:
            connections.close_all()
        SLOTS.release()
