"""Every error is JSON: {"error": "<message>", "details": {...}}, never a 500 page."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

# Pydantic's error types for a body that is JSON but not an object.
NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}


class NotFound(Exception):
    def __init__(self, message: str):
        self.message = message


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is over {limit // 1024} KiB")


class BodyLimit:
    """413 for a request body over `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            too_large = BodyTooLarge(self.limit)
            response = error(too_large.status_code, too_large.detail)
            return await response(scope, receive, send)
        received = 0

        async def receive_within_limit():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # FastAPI passes an HTTPException raised while reading the
                # body on to the exception handlers: a JSON 413.
                raise BodyTooLarge(self.limit)
            return message

        return await self.app(scope, receive_within_limit, send)


def error(status: int, message: str, details: dict | None = None, **kwargs):
    return JSONResponse(
        {"error": message, "details": details or {}}, status_code=status, **kwargs
    )


def is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    return content_type == "application/json" or content_type.endswith("+json")


async def on_http_error(request: Request, exc: HTTPException):
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error(exc.status_code, message, headers=exc.headers)


async def on_not_found(request: Request, exc: NotFound):
    return error(404, exc.message)


async def on_invalid(request: Request, exc: RequestValidationError):
    problems = exc.errors()
    where = {p["loc"][0] for p in problems if p["loc"]}
    if "body" in where and not is_json(request):
        return error(415, "the body must be JSON (Content-Type: application/json)")
    if any(p["type"] == "json_invalid" for p in problems):
        return error(400, "malformed JSON", {"body": problems[0]["ctx"]["error"]})
    if any(p["loc"] == ("body",) and p["type"] in NOT_AN_OBJECT for p in problems):
        return error(400, "the request body must be a JSON object")
    if "path" in where:
        return error(404, "not found")
    details = {
        ".".join(str(part) for part in p["loc"]): p["msg"].removeprefix("Value error, ")
        for p in problems
    }
    return error(422, "invalid request", details)


async def on_unexpected(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error(500, "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_unexpected)
