"""GET /healthz: 200 when the app and its database answer, 503 when not."""

from fastapi.testclient import TestClient
{% if cookiecutter.database == "postgres" %}
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
{% endif %}

from {{ cookiecutter.project_slug }}.main import create_app
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support import free_port{% if cookiecutter.database == "postgres" %}, wait_until{% endif %}



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
{% if cookiecutter.database == "postgres" %}


def test_a_connection_postgres_ended_is_replaced_before_use(app, client):
    """After a PostgreSQL restart the app answers at once: no 503, no 500."""
    engine = app.state.engine
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
        wait_until(lambda: connection.execute(gone, {"pid": kept}).scalar(), timeout=30)

    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert client.get("/api/notes").status_code == 200
    assert pooled_backend() != kept
{% endif %}
