"""Enqueue N no-op jobs from one process, one job per transaction, as a request would.

Run by `bench/run.py` with the generated project's virtualenv and settings;
prints one JSON line: {"jobs": N, "seconds": S}.
"""

import json
import sys
import time

import napkin_bench_jobs as bench


def main() -> None:
    count = int(sys.argv[1])
    jobs = bench.jobs
    if hasattr(jobs, "huey"):
        # What the app's after-commit hook does for each queued job.
        start = time.perf_counter()
        for _ in range(count):
            bench.noop()
        seconds = time.perf_counter() - start
    else:
        # The app's own helper: the job joins the session's transaction.
        with jobs.app.open(), jobs.sessions()() as session:
            start = time.perf_counter()
            for _ in range(count):
                jobs.enqueue(session, bench.noop)
                session.commit()
            seconds = time.perf_counter() - start
    print(json.dumps({"jobs": count, "seconds": seconds}))


if __name__ == "__main__":
    main()
