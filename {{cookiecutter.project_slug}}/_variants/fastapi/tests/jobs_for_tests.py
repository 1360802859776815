"""Jobs only the tests queue; the worker imports them via JOBS_IMPORT_PATHS.

Each run appends a line to a file named after its key in TEST_JOBS_DIR, so a
test can count runs across worker processes.
"""

import os
import time
from pathlib import Path

from {{ cookiecutter.project_slug }} import jobs

{% if cookiecutter.database == "postgres" %}
task = jobs.app.task(retry=jobs.RETRY)
{% else %}
task = jobs.huey.task(**jobs.RETRY)
{% endif %}


def log_dir() -> Path:
    return Path(os.environ["TEST_JOBS_DIR"])


def log(key: str, event: str) -> None:
    with (log_dir() / key).open("a") as file:
        file.write(f"{event} {os.getpid()}\n")


def events(key: str, directory: Path | None = None) -> list[str]:
    path = (directory or log_dir()) / key
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[0] for line in lines]


@task
def flaky(key: str, failures: int) -> None:
    """Fails `failures` times, then succeeds."""
    log(key, "run")
    if events(key).count("run") <= failures:
        raise RuntimeError(f"{key}: failing on purpose")
    log(key, "ok")


@task
def always_fails(key: str) -> None:
    log(key, "run")
    raise RuntimeError(f"{key}: failing on purpose")


@task
def slow(key: str) -> None:
    """Runs until the test creates `<key>.release` (or a minute passes)."""
    log(key, "start")
    release = log_dir() / f"{key}.release"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    log(key, "done")


@task
def record(key: str) -> None:
    log(key, "run")
