"""Concurrent writers through the real app: no "database is locked", nothing lost."""

{% if cookiecutter.database == "sqlite" %}
import sqlite3
{% endif %}
from concurrent.futures import ThreadPoolExecutor
{% if cookiecutter.database == "sqlite" %}

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.project_slug }}.database import configure_engine, engine_options
{% endif %}

WRITERS = 8
NOTES_EACH = 25


def test_concurrent_writers_all_succeed(app):
    def write(writer: int) -> list[int]:
        client = app.test_client()
        statuses = []
        for n in range(NOTES_EACH):
            response = client.post("/api/notes", json={"title": f"{writer}-{n}"})
            statuses.append(response.status_code)
            if n % 5 == 0:
                client.patch(
                    f"/api/notes/{response.json['id']}", json={"body": "edited"}
                )
        return statuses

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(write, range(WRITERS)))

    assert all(status == 201 for statuses in results for status in statuses)
    listing = app.test_client().get("/api/notes?per_page=1").json
    assert listing["total"] == WRITERS * NOTES_EACH
{% if cookiecutter.database == "sqlite" %}


def test_a_writer_that_cannot_get_the_lock_gets_sqlalchemys_error(settings):
    """BEGIN IMMEDIATE gives up after busy_timeout with OperationalError, the
    error a failed query raises, so handlers and healthz treat it alike."""
    engine = create_engine(settings.database_url, **engine_options(settings))
    configure_engine(engine)
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with engine.connect() as connection:
            connection.connection.driver_connection.execute("PRAGMA busy_timeout=50")
            with pytest.raises(OperationalError, match="database is locked"):
                connection.execution_options(sqlite_begin="IMMEDIATE").begin()
    finally:
        holder.close()
        engine.dispose()
{% endif %}
