"""GET /healthz: is the app up, and does its database answer?"""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .database import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    revision = current_app.config["REVISION"]
    try:
        # A pooled connection of its own, without an ORM session around it.
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.exception("healthz: the database does not answer")
        body = {"status": "error", "database": "unavailable", "revision": revision}
        return body, 503
    return {"status": "ok", "database": "ok", "revision": revision}
