"""The pools that live in this process, so that a committed task can wake every one of them."""

from __future__ import annotations

import weakref
from typing import Protocol


class Wakeable(Protocol):
    def notify(self) -> None: ...


# Every started pool of this process: the process's own, and one that taskq_worker or a
# test started by hand. Weak, so a pool nobody stopped does not live on because of it.
_live: weakref.WeakSet[Wakeable] = weakref.WeakSet()


def register(pool: Wakeable) -> None:
    """Have ``pool`` woken whenever a task commits in this process."""
    _live.add(pool)


def unregister(pool: Wakeable) -> None:
    """Stop waking ``pool``."""
    _live.discard(pool)


def wake_all() -> None:
    """Wake every live pool in this process: a task was just committed."""
    for pool in list(_live):
        pool.notify()
