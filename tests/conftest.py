from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskq.pool import Pool
from tests.helpers import taskq_threads, wait_until
from tests.testapp import tasks


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the demo site's tests, so ``pytest -m "not demo"`` runs taskq's own tests alone."""
    for item in items:
        if item.path.name.startswith("test_demo_"):
            item.add_marker(pytest.mark.demo)


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Fail any test that leaves a taskq thread running, and reset the tasks' shared state."""
    tasks.EVENTS.clear()
    tasks.SEEN.clear()
    yield
    for event in list(tasks.EVENTS.values()):
        event.set()  # release anything a failed test left blocked
    wait_until(lambda: not taskq_threads(), timeout=15)


@pytest.fixture
def make_pool(transactional_db: None) -> Iterator[Callable[..., Pool]]:
    """Start real pools that are always stopped, with their connections closed, at teardown."""
    pools: list[Pool] = []

    def make(**kwargs: Any) -> Pool:
        kwargs.setdefault("workers", 4)
        kwargs.setdefault("poll_interval", 0.05)
        pool = Pool(**kwargs).start()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        assert pool.stop(), f"{pool.name} did not stop"


@pytest.fixture
def empty_schedule_registry() -> Iterator[None]:
    """No @periodic entries registered by other tests, and the registry as it was afterwards."""
    from taskq import schedule_entries

    saved = dict(schedule_entries.registry)
    schedule_entries.registry.clear()
    yield
    schedule_entries.registry.clear()
    schedule_entries.registry.update(saved)
