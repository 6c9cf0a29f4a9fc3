"""The benchmark's summary keeps what its tables and charts need, so docs/benchmarks.md redraws from git."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import report, summary

ROOT = Path(__file__).resolve().parent.parent


def _raw_run(config: str, system: str, repeat: int, pickups: list[float]) -> dict[str, Any]:
    started = 1_000_000.0
    return {
        "config": config,
        "system": system,
        "repeat": repeat,
        "w1": {
            "tasks": 100,
            "submit_s": 0.5,
            "wall_s": 0.51 + repeat / 100,
            "tasks_per_s": 196.07843137 - repeat,
        },
        "w2": {"tasks": 40, "ideal_s": 0.25, "wall_s": 0.3, "ratio_to_ideal": 1.2},
        "w3": {
            "tasks": len(pickups),
            "enqueue_queries": 1,
            "enqueue_ms": {"p50": 1.5, "p95": 2.0, "p99": 3.0},
            "create_ms": {"p50": 1.2, "p95": 1.9, "p99": 2.5},
            "enqueue_over_create_p50": 1.25,
            "pickup_ms": {"p50": 4.0, "p95": 5.0, "p99": 9.0},
            "pickup_all_ms": pickups,
        },
        "rss_peak_mb": 58.123456789,
        "helper_rss_mb": None,
        "phases": [
            {"name": "started", "at": started},
            {"name": "w1", "begin": started, "end": started + 1, "idle_at": started + 3},
            {"name": "stopped", "at": started + 4},
        ],
        "session_series": [[t / 10, 9 if 0 < t < 15 else 0] for t in range(50)],
    }


def test_the_tables_of_a_summary_match_those_of_its_raw_run() -> None:
    pickups = [2.0 + i / 10 for i in range(200)]
    point = {"config": "pg-age60", "mix": "finished", "rows": 1000, "claim_ms": {"p50": 2.0, "p95": 3.0}}
    point |= {"w1_tasks_per_s": [250.0, 240.0, 260.0], "claim_plan": "Limit ...", "session_series": [[0, 1]]}
    systems = ("taskq", "executor", "huey")
    raw = {"meta": {}, "runs": [_raw_run("pg-age60", s, r, pickups) for s in systems for r in range(3)]}
    raw["scale"] = [point]
    small = json.loads(json.dumps(summary.summarise(json.loads(json.dumps(raw)))))

    assert report.render(small) == report.render(raw)
    assert all("pickup_all_ms" not in run["w3"] and "session_series" not in run for run in small["runs"])
    first = small["runs"][0]
    assert first["w3"]["pickup_quantiles_ms"][0] == 2.0
    assert first["w3"]["pickup_quantiles_ms"][-1] == pytest.approx(21.9)
    assert first["session_steps"] == [[0.0, 0], [0.1, 9], [1.4, 9], [1.5, 0], [4.9, 0]]
    assert "session_steps" not in small["runs"][1]


def test_the_committed_summary_prints_the_tables_docs_benchmarks_quotes() -> None:
    [path] = sorted(ROOT.glob("bench/summary-*.json"))
    assert path.stat().st_size < 200_000, "keep the summary small: run it through `bench/run summary`"

    tables = report.render(json.loads(path.read_text()))

    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    row = next(line for line in tables.splitlines() if line.startswith("| sqlite | taskq |"))
    assert row in docs


def test_the_charts_redraw_from_the_committed_summary(tmp_path: Path) -> None:
    pytest.importorskip(
        "matplotlib", reason="the charts need matplotlib, which only bench/requirements.txt has"
    )
    from bench import charts

    [path] = sorted(ROOT.glob("bench/summary-*.json"))
    summary_data = json.loads(path.read_text())
    charts.draw(summary_data, tmp_path)

    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    expected = ["bench-connections.png", "bench-latency.png", "bench-throughput.png"]
    expected += ["bench-scale.png"] * bool(summary_data.get("scale"))
    expected += ["bench-w4-w5.png"] * bool(summary_data.get("drain"))
    assert drawn == sorted(expected)
