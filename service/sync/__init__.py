"""Sync orchestration: the run (run.py), the scheduler, the per-source locks, prefetch, sources."""
