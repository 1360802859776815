"""GET /healthz: 200 when the app and its database answer, 503 when not."""

from fastapi.testclient import TestClient

from {{ cookiecutter.project_slug }}.main import create_app
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support import free_port


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "revision": "dev"}


def test_healthz_is_503_when_the_database_is_down(is_sqlite, tmp_path):
    if is_sqlite:
        down = f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}"
    else:
        down = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    app = create_app(Settings(database_url=down))
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["database"] == "unavailable"


def test_unknown_host_is_refused(client):
    response = client.get("/healthz", headers={"Host": "evil.example.net"})
    assert response.status_code == 400
