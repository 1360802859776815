"""{{ cookiecutter.project_name }}: the Flask app factory."""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from .database import configure_engine, db, engine_options, migrate
from .settings import PROJECT_ROOT, Settings


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built once per app.

    Flask builds it for every request, even one that sends no cookie: a
    twentieth of the CPU time of a health check in napkin's `make bench`.
    A request without cookies gets an empty session without parsing any.
    """

    def get_signing_serializer(self, app: Flask):
        if "session_serializer" not in app.extensions:
            serializer = super().get_signing_serializer(app)
            app.extensions["session_serializer"] = serializer
        return app.extensions["session_serializer"]

    def open_session(self, app: Flask, request: Request):
        # No Cookie header, no session to read: skip werkzeug's cookie parsing,
        # which walks every header of the request to find none.
        if "HTTP_COOKIE" not in request.environ:
            if self.get_signing_serializer(app) is None:
                return None  # no SECRET_KEY: Flask's null session, as before
            return self.session_class()
        return super().open_session(app, request)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.check()
    # Imported here, so a bad setting read on import (jobs.py) also reaches
    # the caller as ImproperlyConfigured (wsgi.py, worker.py).
    from . import cli, errors, health, notes

    app = Flask(__name__)
    app.session_interface = CookieSessions()
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        DEBUG=settings.debug,
        REVISION=settings.revision,
        # Requests for other host names get 400 (ALLOWED_HOSTS; "*" allows any).
        TRUSTED_HOSTS=None
        if "*" in settings.allowed_hosts
        else list(settings.allowed_hosts),
        # Larger request bodies get 413 before they are read.
        MAX_CONTENT_LENGTH=64 * 1024,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings),
    )
    # nginx in front sets X-Forwarded-For/-Proto: trust one proxy hop, so
    # request.remote_addr is the client and request.scheme is https. nginx
    # passes the original Host, so X-Forwarded-Host is not trusted.
    # https://werkzeug.palletsprojects.com/en/stable/middleware/proxy_fix/
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    with app.app_context():
        configure_engine(db.engine)

    errors.register(app)
    cli.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(notes.bp)
    return app
