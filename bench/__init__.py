"""Benchmarks, run by hand (`make bench`); results go into docs/performance.md, not a test."""
