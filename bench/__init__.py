"""Benchmarks: ours against the reference route, in the same run (see bench/README.md)."""
