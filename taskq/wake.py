"""The pools that live in this process, so that a committed task can wake every one of them."""

from __future__ import annotations

import weakref
from typing import Protocol

from taskq.listen import announce


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


def wake_all() -> int:
    """Wake every live pool in this process: a task was just committed. Return how many."""
    pools = list(_live)
    for pool in pools:
        pool.notify()
    return len(pools)


def task_committed() -> None:
    """A task was committed: wake this process's pools, or, with none here, those of other processes."""
    if not wake_all():
        # Only a process that runs no pool tells the others: one that runs a pool has just
        # woken it, and a NOTIFY per enqueue would cost its requests a round trip.
        announce()
