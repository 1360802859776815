"""Database connections: SQLite pragmas and concurrent writers, PostgreSQL
statement timeout and persistent connections."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import fetch, wait_until
from django.db import connection

from {{ cookiecutter.project_slug }}.models import Note

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="DATABASE_URL is not SQLite"
)
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="DATABASE_URL is not PostgreSQL"
)


def post_note(base, title):
    body = json.dumps({"title": title, "body": "some words here"})
    headers = {"Content-Type": "application/json"}
    return fetch(base, "POST", "/api/notes", headers, body)[0]


def get_json(base, path):
    status, _, body = fetch(base, "GET", path)
    assert status == 200, body
    return json.loads(body)


@sqlite_only
@pytest.mark.django_db
def test_sqlite_connection_pragmas():
    with connection.cursor() as cursor:
        values = {
            pragma: cursor.execute(f"PRAGMA {pragma}").fetchone()[0]
            for pragma in (
                "journal_mode",
                "busy_timeout",
                "synchronous",
                "foreign_keys",
            )
        }
    assert values == {
        "journal_mode": "wal",
        "busy_timeout": 20000,
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_lose_nothing(start_web):
    base = start_web(WEB_CONCURRENCY="4")
    writers, each = 8, 25

    def write(writer):
        return [post_note(base, f"w{writer}-{n}") for n in range(each)]

    with ThreadPoolExecutor(writers) as pool:
        statuses = [s for batch in pool.map(write, range(writers)) for s in batch]
    assert statuses == [201] * writers * each
    assert Note.objects.count() == writers * each
    assert get_json(base, "/api/notes?per_page=1")["total"] == writers * each


@postgres_only
@pytest.mark.django_db
def test_postgres_statement_timeout_is_set():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_postgres_connection_is_kept_across_requests(start_web):
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        started = cursor.fetchone()[0]
    # One gunicorn worker with one thread, never recycled during the test.
    base = start_web(WEB_CONCURRENCY="1", WEB_THREADS="1", WEB_TIMEOUT="600")

    def app_backends():
        """Connections opened since the app started, other than this test's."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_start >= %s",
                [started],
            )
            return {row[0] for row in cursor.fetchall()}

    get_json(base, "/healthz")
    first = app_backends()
    for _ in range(5):
        get_json(base, "/api/notes")
    assert len(first) == 1
    assert app_backends() == first


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_connection_postgres_ended_is_replaced_before_use(start_web):
    """After a PostgreSQL restart the app answers at once: no 503, no 500."""
    base = start_web(
        WEB_CONCURRENCY="1", WEB_THREADS="1", WEB_TIMEOUT="600", PGAPPNAME="web-test"
    )

    def app_backends():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'web-test'"
            )
            return {row[0] for row in cursor.fetchall()}

    get_json(base, "/healthz")
    (kept,) = app_backends()
    # What a restart does to each connection: an error message, then close.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [kept])
    wait_until(lambda: kept not in app_backends(), what="the backend to exit")

    assert get_json(base, "/healthz")["database"] == "ok"
    assert isinstance(get_json(base, "/api/notes")["total"], int)
    (replacement,) = app_backends()
    assert replacement != kept
