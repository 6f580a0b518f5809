"""Executors: run a job's pending chunks through a scorer."""
