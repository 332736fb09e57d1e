"""The per-run supervisor, started as ``python -m trainyard.runtime <run_dir>``.

This package must stay import-free at this level: the supervisor's start-up time is on the
submit -> running path, so it loads only the standard library (and psutil once replicas run).
The run directory layout it reads and writes is described in ``docs/local-backend.md``.
"""
