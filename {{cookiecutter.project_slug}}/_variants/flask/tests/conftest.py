"""Fixtures: the app on a test database of its own, never the one DATABASE_URL names.

{% if cookiecutter.database == "postgres" %}
PostgreSQL: `<name>_test` on the same server, created for the session and
dropped after.
{% else %}
SQLite: a file in a temporary directory.
{% endif %}
The test settings go into os.environ before the app is imported, so the job
queue and the worker processes the tests start use the test database too.
"""

from __future__ import annotations

import os
{% if cookiecutter.database == "sqlite" %}
import shutil
import tempfile
{% endif %}
from pathlib import Path

{% if cookiecutter.database == "postgres" %}
import psycopg
{% endif %}
import pytest
from dotenv import dotenv_values
{% if cookiecutter.database == "postgres" %}
from sqlalchemy.engine import make_url
{% endif %}

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-that-is-long-enough-1234"  # noqa: S105 (tests only)


def configured_env() -> dict[str, str]:
    """What the app would read: `.env`, then the environment on top."""
    env = {
        key: value
        for key, value in dotenv_values(PROJECT_ROOT / ".env").items()
        if value is not None
    }
    env.update(os.environ)
    return env


{% if cookiecutter.database == "postgres" %}
CONFIGURED = configured_env().get("DATABASE_URL", "")
if not CONFIGURED.startswith(("postgresql:", "postgres:")):
    pytest.exit("DATABASE_URL must name a PostgreSQL server (postgresql://...)")
_url = make_url(CONFIGURED)
TEST_DATABASE = f"{_url.database}_test"
_admin = _url.set(drivername="postgresql", database="postgres")
ADMIN_CONNINFO = _admin.render_as_string(hide_password=False)
DATABASE_URL = _url.set(database=TEST_DATABASE).render_as_string(hide_password=False)
{% else %}
TEST_DIR = Path(tempfile.mkdtemp(prefix="{{ cookiecutter.project_slug }}-tests-"))
DATABASE_URL = f"sqlite:///{TEST_DIR / 'test.sqlite3'}"
{% endif %}
TEST_ENV = {
    "APP_ENV": "development",
    "DEBUG": "false",
    "SECRET_KEY": TEST_SECRET,
    "ALLOWED_HOSTS": "localhost",
    "DATABASE_URL": DATABASE_URL,
    "JOBS_IMPORT_PATHS": "tests.jobs_for_tests",
    "JOBS_POLL_INTERVAL": "0.2",
    "JOBS_HEARTBEAT_INTERVAL": "0.5",
    "JOBS_STALLED_AFTER": "2",
    "JOBS_SHUTDOWN_TIMEOUT": "20",
}
os.environ.update(TEST_ENV)

# Imported only now: the job queue reads its settings on import.
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import text  # noqa: E402

from {{ cookiecutter.project_slug }} import create_app  # noqa: E402
from {{ cookiecutter.project_slug }}.database import db  # noqa: E402
from {{ cookiecutter.project_slug }}.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def database_url():
{% if cookiecutter.database == "postgres" %}
    def run(sql: str) -> None:
        with psycopg.connect(ADMIN_CONNINFO, autocommit=True) as connection:
            connection.execute(sql)

    run(f'DROP DATABASE IF EXISTS "{TEST_DATABASE}" WITH (FORCE)')
    run(f'CREATE DATABASE "{TEST_DATABASE}"')
    yield DATABASE_URL
    run(f'DROP DATABASE IF EXISTS "{TEST_DATABASE}" WITH (FORCE)')
{% else %}
    yield DATABASE_URL
    shutil.rmtree(TEST_DIR, ignore_errors=True)
{% endif %}


@pytest.fixture(scope="session")
def test_env(database_url) -> dict[str, str]:
    """The environment for processes the tests start (bin/worker)."""
    return {**configured_env(), **TEST_ENV}


@pytest.fixture(scope="session")
def settings(test_env) -> Settings:
    return Settings.from_env(test_env)


@pytest.fixture(scope="session")
def app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(autouse=True)
def _empty_tables(request):
    """Each test starts with no notes (in the test database only)."""
    if "app" in request.fixturenames:
        with request.getfixturevalue("app").app_context():
            db.session.execute(text("DELETE FROM notes"))
            db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()
