"""Run the tests on a database of their own, never the one DATABASE_URL names.

PostgreSQL: `<name>_test` on the same server, created for the session and
dropped after. SQLite: a file in a temporary directory.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.project_slug }}.db import database_url
from {{ cookiecutter.project_slug }}.settings import ROOT, Settings
from tests.support import free_port, wait_until

TEST_ENV = {
    "APP_ENV": "development",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    # The process that queues a job and the worker must agree on these.
    "JOBS_MAX_ATTEMPTS": "3",
    "JOBS_RETRY_BACKOFF": "1",
}
_scratch = Path(tempfile.mkdtemp(prefix="{{ cookiecutter.project_slug }}-tests-"))


def _admin(url: str, statement: str) -> None:
    """CREATE/DROP DATABASE from the server's `postgres` database, as Django
    does, or from the app's own database if that one is out of reach."""
    parsed = database_url(url)
    for maintenance in ("postgres", parsed.database):
        engine = create_engine(
            parsed.set(database=maintenance), isolation_level="AUTOCOMMIT"
        )
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
            return
        except OperationalError:
            if maintenance == parsed.database:
                raise
        finally:
            engine.dispose()


def _create_test_database(url: str) -> str:
    if database_url(url).get_backend_name() == "sqlite":
        return f"sqlite:///{_scratch / 'test.sqlite3'}"
    name = f"{make_url(url).database}_test"
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(url, f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _drop_test_database(url: str, test_url: str) -> None:
    if database_url(url).get_backend_name() != "sqlite":
        name = make_url(test_url).database
        _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_configure(config):
    os.environ.update(TEST_ENV)
    config.app_database_url = Settings().database_url
    os.environ["DATABASE_URL"] = _create_test_database(config.app_database_url)
    alembic = Config(str(ROOT / "alembic.ini"), attributes={"configure_logger": False})
    command.upgrade(alembic, "head")


def pytest_unconfigure(config):
    if hasattr(config, "app_database_url"):
        _drop_test_database(config.app_database_url, os.environ["DATABASE_URL"])
    shutil.rmtree(_scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def app():
    from {{ cookiecutter.project_slug }}.main import create_app

    return create_app()


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with app.state.engine.begin() as connection:
        connection.execute(text("DELETE FROM notes"))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def is_sqlite() -> bool:
    return os.environ["DATABASE_URL"].startswith("sqlite")


@pytest.fixture(scope="module")
def server():
    """The app served by bin/web (gunicorn + uvicorn workers) on a free port."""
    import httpx2

    port = free_port()
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2")
    process = subprocess.Popen([ROOT / "bin" / "web"], env=env)  # noqa: S603
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx2.get(f"{url}/healthz").status_code == 200
        except httpx2.TransportError:
            return process.poll() is not None

    try:
        wait_until(up, timeout=180)
        assert process.poll() is None, "bin/web exited"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
