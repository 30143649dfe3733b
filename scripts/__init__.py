"""Maintenance scripts run with `python -m scripts.NAME` (the benchmark, load tests)."""
