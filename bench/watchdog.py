"""Abort a measured process whose sessions run away, before it starves the shared server."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from bench.dbtools import count_sessions, server_connect


def guard(engine: str, settings: dict[str, Any], cap: int, interval: float = 0.1) -> None:
    """Watch the bench database's sessions from a thread; exit the process at once above ``cap``."""
    conn = server_connect(engine, settings)

    def watch() -> None:
        while True:
            # The watchdog's own connection is to another database, so it is not counted.
            count = count_sessions(engine, conn, settings["NAME"])
            if count > cap:
                report = {
                    "error": f"aborted: {count} sessions open on the bench database, over the cap of {cap}"
                }
                sys.stdout.write("\n" + json.dumps(report) + "\n")
                sys.stdout.flush()
                # Exiting the process is the one sure way to close what the threads leaked.
                os._exit(3)
            time.sleep(interval)

    threading.Thread(target=watch, name="bench-watchdog", daemon=True).start()
