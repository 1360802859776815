"""The app as bin/web serves it: behind a proxy, under concurrent writes."""

{% if cookiecutter.database == "sqlite" %}
import sqlite3
{% endif %}
from concurrent.futures import ThreadPoolExecutor

import httpx2
{% if cookiecutter.database == "sqlite" %}
import pytest
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.project_slug }}.db import WRITE, make_engine
from {{ cookiecutter.project_slug }}.settings import Settings
{% endif %}

PROXY_HEADERS = {
    "Host": "localhost",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9",
}


def test_the_app_sees_https_behind_the_proxy(server):
    response = httpx2.post(
        f"{server}/api/notes", json={"title": "proxied"}, headers=PROXY_HEADERS
    )
    assert response.status_code == 201
    assert response.headers["location"].startswith("https://localhost/api/notes/")


def test_concurrent_writers_all_succeed(server):
    writers, inserts = 8, 25

    def write(writer: int) -> list[int]:
        with httpx2.Client(base_url=server, timeout=30) as client:
            statuses = []
            for n in range(inserts):
                response = client.post(
                    "/api/notes", json={"title": f"writer {writer} note {n}"}
                )
                statuses.append(response.status_code)
            return statuses

    with ThreadPoolExecutor(writers) as pool:
        statuses = [s for result in pool.map(write, range(writers)) for s in result]
    assert statuses == [201] * writers * inserts
    titles = set()
    page = 1
    while True:
        body = httpx2.get(
            f"{server}/api/notes", params={"page": page, "per_page": 100}
        ).json()
        titles |= {item["title"] for item in body["items"]}
        if not body["items"]:
            break
        page += 1
    expected = {f"writer {w} note {n}" for w in range(writers) for n in range(inserts)}
    assert expected <= titles
{% if cookiecutter.database == "sqlite" %}


def test_a_writer_that_cannot_get_the_lock_gets_sqlalchemys_error():
    """BEGIN IMMEDIATE gives up after busy_timeout with OperationalError, the
    error a failed query raises, so handlers and healthz treat it alike."""
    engine = make_engine(Settings())
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with engine.connect() as connection:
            connection.connection.driver_connection.execute("PRAGMA busy_timeout=50")
            with pytest.raises(OperationalError, match="database is locked"):
                connection.execution_options(**WRITE).begin()
    finally:
        holder.close()
        engine.dispose()
{% endif %}
