"""A no-op job for the queue benchmark, added to a generated project's queue.

`bench/run.py` puts this directory on PYTHONPATH and names this module in
JOBS_IMPORT_PATHS, so `bin/worker` loads it exactly as it loads a project's
own extra job modules. NAPKIN_BENCH_JOBS names the project's jobs module.
"""

import importlib
import os

jobs = importlib.import_module(os.environ["NAPKIN_BENCH_JOBS"])

if hasattr(jobs, "huey"):

    @jobs.huey.task()
    def noop() -> None:
        """Does nothing: the figure is the queue's own cost per job."""

else:

    @jobs.app.task()
    def noop() -> None:
        """Does nothing: the figure is the queue's own cost per job."""
