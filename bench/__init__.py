"""taskq's benchmark suite: run with ``bench/run`` (see docs/benchmarks.md). Not part of the tests."""
