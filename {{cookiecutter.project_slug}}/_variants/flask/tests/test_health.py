{% if cookiecutter.database == "postgres" %}
import socket
import time
{% endif %}
from dataclasses import replace

from flask import request, session
{% if cookiecutter.database == "postgres" %}
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
{% endif %}

from {{ cookiecutter.project_slug }} import create_app
{% if cookiecutter.database == "postgres" %}
from {{ cookiecutter.project_slug }}.database import db
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


def test_a_connection_postgres_ended_is_replaced_before_use(app, client):
    """After a PostgreSQL restart the app answers at once: no 503, no 500."""
    with app.app_context():
        engine = db.engine
    engine.dispose()  # from here the pool holds the one connection requests use
    assert client.get("/healthz").status_code == 200

    def pooled_backend():
        with engine.connect() as connection:
            return connection.execute(text("SELECT pg_backend_pid()")).scalar()

    kept = pooled_backend()
    assert pooled_backend() == kept  # kept between uses, not opened anew
    admin = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        # What a restart does to each connection: an error message, then close.
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": kept})
        gone = text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid")
        deadline = time.monotonic() + 30
        while not connection.execute(gone, {"pid": kept}).scalar():
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.05)

    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["database"] == "ok"
    assert client.get("/api/notes").status_code == 200
    assert pooled_backend() != kept
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
            # nginx sends the Host it served; a client's own X-Forwarded-Host
            # must not change which host the app thinks it is.
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert response.json == {
        "scheme": "https",
        "host": "localhost",
        "ip": "203.0.113.7",
    }


def test_a_signed_session_cookie_comes_back_and_a_forged_one_does_not(settings):
    """Sessions still work with the signer built once (CookieSessions)."""
    app = create_app(settings)

    @app.get("/_test/plain")
    def plain():
        return {"ok": True}

    @app.get("/_test/session")
    def remember():
        session["seen"] = session.get("seen", 0) + 1
        return {"seen": session["seen"]}

    client = app.test_client()
    assert client.get("/_test/session").json == {"seen": 1}
    assert client.get("/_test/session").json == {"seen": 2}
    cookie = client.get_cookie("session")
    client.set_cookie("session", cookie.value[:-2] + "xx")  # a bad signature
    assert client.get("/_test/session").json == {"seen": 1}

    # Other cookies, or none, start a new session; a view that leaves the
    # session alone sets no cookie.
    other = app.test_client()
    other.set_cookie("theme", "dark")
    assert other.get("/_test/session").json == {"seen": 1}
    response = app.test_client().get("/_test/plain")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
