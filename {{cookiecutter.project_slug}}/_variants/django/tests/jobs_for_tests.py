"""Jobs that only the tests use; bin/worker imports them when the tests set
JOBS_IMPORT_PATHS=tests.jobs_for_tests. Each run appends a line to the file
named by JOBS_TEST_LOG, which the tests read.
"""

import os
import time
from pathlib import Path

{% if cookiecutter.database == "postgres" %}
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

task = app.task
# FLAKY allows 5 runs, FAILING 3: max_attempts counts the retries.
FLAKY = {"retry": RetryStrategy(max_attempts=4)}
FAILING = {"retry": RetryStrategy(max_attempts=2)}
{% else %}
from huey.contrib.djhuey import task

# FLAKY allows 5 runs, FAILING 3: retries after the first run.
FLAKY = {"retries": 4}
FAILING = {"retries": 2}
{% endif %}


def record(*words):
    with Path(os.environ["JOBS_TEST_LOG"]).open("a") as log:
        log.write(" ".join(map(str, words)) + "\n")


def runs(*words):
    path = Path(os.environ["JOBS_TEST_LOG"])
    line = " ".join(map(str, words))
    return path.read_text().splitlines().count(line) if path.exists() else 0


@task(**FLAKY)
def flaky(key: str):
    record("flaky", key)
    if runs("flaky", key) < 3:
        raise RuntimeError(f"flaky {key} fails this time")


@task(**FAILING)
def always_fails(key: str):
    record("fails", key)
    raise RuntimeError(f"always fails {key}")


@task()
def slow(key: str, seconds: float):
    record("start", key)
    time.sleep(seconds)
    record("done", key)


@task()
def mark(key: str):
    record("mark", key)
