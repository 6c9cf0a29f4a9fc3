"""Found by huey's run_huey, which imports every installed app's ``tasks`` module at start."""

from __future__ import annotations

import os

# taskq's pools import every app's tasks module too (for @periodic), so only huey's consumer
# (BENCH_HUEY=1) loads huey here: in a taskq process it would add huey, redis-py and psycopg
# to the RSS that the memory target compares with a process that runs no pool.
if os.environ.get("BENCH_HUEY") == "1":
    from bench import huey_tasks  # noqa: F401
