"""The ASGI app: `{{ cookiecutter.project_slug }}.main:app` (bin/web, gunicorn.conf.py)."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from . import api, errors
from .db import make_engine, make_sessionmakers
from .settings import ROOT, Settings, get_settings

# Larger requests get a 413 before the body is read.
MAX_BODY_BYTES = 64 * 1024


def revision() -> str:
    """The deployed commit, written to REVISION by the deploy; 'dev' otherwise."""
    path = ROOT / "REVISION"
    return path.read_text().strip() if path.is_file() else "dev"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        debug=settings.debug,
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings)
    app.state.read_session, app.state.write_session = make_sessionmakers(
        app.state.engine
    )
    app.state.revision = revision()
    # Requests naming another host are refused with 400 (ALLOWED_HOSTS).
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(errors.BodyLimit, limit=MAX_BODY_BYTES)
    errors.install(app)
    app.include_router(api.router)

    @app.get("/healthz", tags=["operations"])
    def healthz(request: Request) -> JSONResponse:
        body = {"status": "ok", "database": "ok", "revision": app.state.revision}
        try:
            with request.app.state.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            body.update(status="error", database="unavailable")
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    return app


app = create_app()
