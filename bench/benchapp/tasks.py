"""Found by huey's run_huey, which imports every installed app's ``tasks`` module at start."""

from __future__ import annotations

from bench import huey_tasks  # noqa: F401
