"""Jobs that only the tests use; the worker imports them via JOBS_IMPORT_PATHS.

Each job records its runs in a file, so a test sees what the worker did.
"""

import time
from pathlib import Path

from {{ cookiecutter.project_slug }}.queue import job


def record(path: str, line: str) -> int:
    with Path(path).open("a") as log:
        log.write(line + "\n")
    return len(Path(path).read_text().splitlines())


@job(retries=2, backoff=0)
def flaky(path: str, failures: int) -> None:
    if record(path, "run") <= failures:
        raise RuntimeError("failing on purpose")


@job(retries=2, backoff=0)
def always_fails(path: str) -> None:
    record(path, "run")
    raise RuntimeError("always failing on purpose")


@job(retries=0)
def slow(path: str, release: str) -> None:
    """Runs until the file `release` exists (at most a minute)."""
    record(path, "start")
    deadline = time.monotonic() + 60
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    record(path, "done")


@job(retries=0)
def note_run(path: str, number: int) -> None:
    record(path, str(number))
    time.sleep(0.01)
