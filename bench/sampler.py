"""Count the server's sessions on the bench database every 100 ms, from outside the measured process."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.dbtools import count_sessions, server_connect


class SessionSampler:
    """A background thread that records (unix time, sessions) pairs until stopped."""

    def __init__(self, engine: str, settings: dict[str, Any], interval: float = 0.1) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> SessionSampler:
        self._conn = server_connect(self.engine, self.settings)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.time(), count_sessions(self.engine, self._conn, self.settings["NAME"])))
            next_at += self.interval
            self._stop.wait(max(next_at - time.monotonic(), 0.0))


# A closed session lingers in the server's list for a moment while its backend exits, so the
# count "after the stop" is read this long after stop() returned (the process lives 0.4 s more).
AFTER_STOP_S = 0.25


def summarise(samples: list[tuple[float, int]], phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak sessions during each workload, the count when idle after it, and after the stop."""

    def first_at(when: float) -> int | None:
        return next((n for t, n in samples if t >= when), None)

    out: dict[str, Any] = {}
    for phase in phases:
        if phase["name"] == "stopped":
            out["after_stop"] = first_at(phase["at"] + AFTER_STOP_S)
        elif "begin" in phase:
            during = [n for t, n in samples if phase["begin"] <= t <= phase["end"]]
            out[phase["name"]] = {"peak": max(during, default=None), "idle": first_at(phase["idle_at"])}
    return out


def resummarise(run: dict[str, Any]) -> dict[str, Any] | None:
    """Recompute a stored run's session figures from its raw series, with the rules above."""
    series, phases = run.get("session_series"), run.get("phases")
    if not series or not phases:
        return run.get("sessions")
    zero = phases[0]["at"]
    out = summarise([(zero + t, n) for t, n in series], phases)
    out["max"] = max(n for _, n in series)
    return out
