"""Every error is JSON: {"error": "<message>", "details": {...}}."""

from __future__ import annotations

from typing import Any

from flask import Flask, json
from werkzeug.exceptions import HTTPException, InternalServerError


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, details: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or {}


def _json_response(status: int, message: str, details: dict[str, Any], headers=None):
    body = json.dumps({"error": message, "details": details})
    return body, status, {**(headers or {}), "Content-Type": "application/json"}


def _api_error(error: ApiError):
    return _json_response(error.status, error.message, error.details)


def _http_error(error: HTTPException):
    # Keep the exception's own headers (Allow on 405), replace the HTML body.
    headers = {
        key: value
        for key, value in error.get_headers()
        if key.lower() != "content-type"
    }
    message = error.description or error.name
    return _json_response(error.code or 500, message, {}, headers)


def _unexpected(error: Exception):
    # Logged by Flask with the traceback; the client gets no internals.
    return _http_error(InternalServerError())


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
