"""Fixtures: a JSON client, and the real app (bin/web) and worker (bin/worker).

Tests use Django's test database (`test_<name>` on PostgreSQL, `<name>_test.*`
beside the SQLite file), never the database DATABASE_URL names.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def api(client):
    """Django's test client, sending and reading JSON."""

    class Api:
        def request(self, method, path, data=None, **kwargs):
            if data is not None and not isinstance(data, str):
                data = json.dumps(data)
            kwargs.setdefault("content_type", "application/json")
            return client.generic(method, path, data or "", **kwargs)

        def __getattr__(self, method):
            return lambda path, data=None, **kw: self.request(
                method.upper(), path, data, **kw
            )

    return Api()


def app_database_url():
    """DATABASE_URL of the test database, for the app and worker processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
    return f"postgresql://{auth}@{host}/{db['NAME']}"


def process_env(**extra):
    """The environment of bin/ scripts started by the tests, with this virtualenv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        VIRTUAL_ENV=sys.prefix,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DATABASE_URL=app_database_url(),
        APP_ENV="development",
        DEBUG="false",
    )
    env.update(extra)
    return env


def fetch(base, method, path, headers=None, body=None):
    """One request to a started app: (status, headers, body text)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        conn.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=120, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process, sig=signal.SIGTERM, timeout=30):
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@pytest.fixture
def start_web(tmp_path):
    """Start bin/web (gunicorn) on a free port; returns its base URL."""
    processes = []

    def start(**env):
        port = free_port()
        log = (tmp_path / f"web-{port}.log").open("w")
        env = process_env(
            **{"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2", **env}
        )
        process = subprocess.Popen(  # noqa: S603 - our own bin/web
            [ROOT / "bin" / "web"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        processes.append(process)

        def listening():
            assert process.poll() is None, (tmp_path / log.name).read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, what="bin/web to listen")
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        stop(process)


{% if cookiecutter.database == "sqlite" %}
@pytest.fixture(scope="session", autouse=True)
def _queue_in_test_database(django_db_setup):
    """huey opened its own connection to DATABASE_URL: use the test file instead."""
    from huey.contrib.djhuey import HUEY

    HUEY.storage.close()
    HUEY.storage.filename = connection.settings_dict["NAME"]


{% endif %}
def enqueue(job, **kwargs):
{% if cookiecutter.database == "postgres" %}
    job.defer(**kwargs)
{% else %}
    job(**kwargs)
{% endif %}


@pytest.fixture
def queue(transactional_db):
    """An empty job queue in the test database, committed for the worker."""
{% if cookiecutter.database == "postgres" %}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")
{% else %}
    from huey.contrib.djhuey import HUEY

    HUEY.flush()
{% endif %}


@pytest.fixture
def job_log(tmp_path):
    return tmp_path / "jobs.log"


@pytest.fixture
def start_worker(tmp_path, job_log):
    """Start bin/worker with quick polling and the test-only jobs."""
    processes = []

    def start(**env):
        log = (tmp_path / f"worker-{len(processes)}.log").open("w")
        env = process_env(
            **{
                "JOBS_IMPORT_PATHS": "tests.jobs_for_tests",
                "JOBS_TEST_LOG": str(job_log),
                "JOBS_POLL_INTERVAL": "0.2",
                "JOBS_HEARTBEAT_INTERVAL": "0.5",
                "JOBS_STALLED_AFTER": "2",
                "JOBS_RECOVER_CRON": "* * * * * *",
                "JOBS_SHUTDOWN_TIMEOUT": "30",
                **env,
            }
        )
        process = subprocess.Popen(  # noqa: S603 - our own bin/worker
            [ROOT / "bin" / "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        process.log = Path(log.name)
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop(process, signal.SIGKILL)
