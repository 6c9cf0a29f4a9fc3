from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from taskq import enqueue
from taskq.models import Task
from taskq.pool import Pool
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="Django's pool is PostgreSQL-only"
)


@pytest.fixture
def django_pg_pool(transactional_db: None) -> Iterator[Any]:
    """Turn on Django's PostgreSQL connection pool (2 slots) for connections opened from now on."""
    connection.close()
    connection.settings_dict["OPTIONS"]["pool"] = {"min_size": 0, "max_size": 2, "timeout": 10}
    try:
        yield connection.pool  # type: ignore[attr-defined]
    finally:
        connection.close()
        connection.close_pool()  # type: ignore[attr-defined]
        del connection.settings_dict["OPTIONS"]["pool"]


def test_workers_share_a_small_pool_and_hold_no_slot_when_idle(
    django_pg_pool: Any, make_pool: Callable[..., Pool]
) -> None:
    # Four workers on a two-slot pool only finish if each returns its slot after every job.
    pool = make_pool(workers=4)
    pks = [enqueue(tasks.create_item, f"pooled-{i}").pk for i in range(40)]
    connection.close()  # give this thread's slot back too
    wait_until(lambda: Task.objects.filter(pk__in=pks).succeeded().count() == 40, timeout=60)
    connection.close()

    def idle() -> bool:
        stats = django_pg_pool.get_stats()
        return bool(stats.get("pool_size", 0) == stats.get("pool_available", 0))

    wait_until(idle)
    assert pool.stop()
