"""Benchmarks, run by hand (`make bench`); results go into the README, never into a test."""
