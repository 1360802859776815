{% if cookiecutter.database == "postgres" %}
import socket
{% endif %}
from dataclasses import replace

from flask import request

from {{ cookiecutter.project_slug }} import create_app
{% if cookiecutter.database == "postgres" %}
from {{ cookiecutter.project_slug }}.settings import database_uri
{% endif %}


def test_healthz_is_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "revision": "dev"}


def test_healthz_is_503_when_the_sqlite_file_cannot_be_opened(settings, tmp_path):
    missing_dir = tmp_path / "no-such-directory" / "app.sqlite3"
    app = create_app(replace(settings, database_url=f"sqlite:///{missing_dir}"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "error"
    assert response.json["database"] == "unavailable"
{% if cookiecutter.database == "postgres" %}


def test_healthz_is_503_when_postgres_does_not_answer(settings):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = database_uri(f"postgresql://nobody@127.0.0.1:{port}/nothing")
    app = create_app(replace(settings, database_url=url))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "unavailable"
{% endif %}


def test_healthz_reports_the_revision(settings):
    app = create_app(replace(settings, revision="abc123"))
    assert app.test_client().get("/healthz").json["revision"] == "abc123"


def test_unknown_path_is_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json["error"]
    assert response.json["details"] == {}


def test_other_host_names_are_refused(client):
    response = client.get("/healthz", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "error" in response.json


def test_proxy_headers_from_nginx_are_trusted(settings):
    app = create_app(settings)

    @app.get("/whoami")
    def whoami():
        return {
            "scheme": request.scheme,
            "host": request.host,
            "ip": request.remote_addr,
        }

    response = app.test_client().get(
        "/whoami",
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Host": "localhost",
        },
    )
    assert response.json == {
        "scheme": "https",
        "host": "localhost",
        "ip": "203.0.113.7",
    }
