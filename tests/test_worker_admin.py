"""The admin's list of Worker rows: a pool that missed two heartbeats reads as stale, not alive."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import worker_row
from tests.test_admin import login

pytestmark = pytest.mark.django_db


def rows(html: str) -> dict[str, str]:
    """Each listed pool's name and the text of its table row, tags stripped."""
    found = {}
    for row in re.findall(r"<tr>.*?</tr>", html, re.S):
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        name = re.search(r"\S+:\d+:\w+", text)
        if name:
            found[name[0]] = row
    return found


def test_a_pool_that_missed_two_heartbeats_is_listed_as_stale(settings: Any) -> None:
    settings.TASKQ_LEASE_SECONDS = 60.0  # a heartbeat every 15 s: stale after 30 s
    worker_row("web-1:10:aa", age=5)
    worker_row("web-2:11:bb", age=45)  # still inside its lease, but gone
    worker_row("web-3:12:cc", age=3600)

    listed = rows(login(superuser=True).get("/admin/taskq/worker/").content.decode())

    assert 'alt="True"' in listed["web-1:10:aa"]
    assert "stale" not in listed["web-1:10:aa"]
    for name in ("web-2:11:bb", "web-3:12:cc"):
        assert 'alt="False"' in listed[name]
        assert "stale: no heartbeat for over 30.0 s" in listed[name]
