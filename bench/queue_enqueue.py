"""Enqueue N no-op jobs from one process, one call per job, as a request would.

Run by `bench/run.py` with the generated project's virtualenv and settings;
prints one JSON line: {"jobs": N, "seconds": S}.
"""

import json
import sys
import time

import napkin_bench_jobs as bench


def main() -> None:
    count = int(sys.argv[1])
    if hasattr(bench.jobs, "huey"):
        start = time.perf_counter()
        for _ in range(count):
            bench.noop()
        seconds = time.perf_counter() - start
    else:
        with bench.jobs.app.open():
            start = time.perf_counter()
            for _ in range(count):
                bench.noop.defer()
            seconds = time.perf_counter() - start
    print(json.dumps({"jobs": count, "seconds": seconds}))


if __name__ == "__main__":
    main()
