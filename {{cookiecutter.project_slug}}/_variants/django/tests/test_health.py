"""GET /healthz: 200 when the database answers, 503 when it does not."""

import json

import pytest
from conftest import fetch, free_port

pytestmark = pytest.mark.django_db


def test_healthz_answers_200_with_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert isinstance(body["revision"], str)


def test_healthz_is_503_when_the_database_is_down(start_web, tmp_path, settings):
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        down = f"sqlite:///{tmp_path}/no-such-directory/app.sqlite3"
    else:
        down = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    base = start_web(DATABASE_URL=down)
    status, headers, text = fetch(base, "GET", "/healthz")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    body = json.loads(text)
    assert body["status"] == "error"
    assert body["database"] == "unavailable"
