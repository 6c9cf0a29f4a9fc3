"""Test settings for worker processes that must be woken by a notify: polls and heartbeats too slow to."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

# A task picked up well inside these was picked up because a notify woke the pool.
TASKQ_POLL_INTERVAL = 60.0
TASKQ_LEASE_SECONDS = 600.0
# TASKQ_TEST_LISTEN=0 turns listening off, to see the adaptive poll on PostgreSQL too.
if os.environ.get("TASKQ_TEST_LISTEN") == "0":
    TASKQ_LISTEN = False
