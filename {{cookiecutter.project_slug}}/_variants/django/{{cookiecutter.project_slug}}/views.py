"""The JSON API: /healthz and /api/notes (CONTRIBUTING.md describes the contract)."""

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection, transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import jobs
from .models import Note

REVISION_FILE = settings.BASE_DIR / "REVISION"
REVISION = (
    REVISION_FILE.read_text().strip() if REVISION_FILE.is_file() else ""
) or "dev"

MAX_ID = 2**63 - 1
MAX_PER_PAGE = 100
LIMITS = {"title": (1, 200), "body": (0, 10000)}


class ApiError(Exception):
    def __init__(self, status, message, details=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or {}


def error(status, message, details=None, **headers):
    body = {"error": message, "details": details or {}}
    return JsonResponse(body, status=status, headers=headers)


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        body = {"status": "error", "database": "unavailable", "revision": REVISION}
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "database": "ok", "revision": REVISION})


def read_json(request):
    """The request body as a dict, or an ApiError for the client."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    limit = settings.NOTES_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = ApiError(413, f"the body is larger than {limit} bytes")
    if declared > limit:
        raise too_big
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(raw) > limit:
        raise too_big
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed JSON", {"json": str(exc)}) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def validate(data, *, partial):
    """The note fields from a request body; 422 for anything else."""
    fields, problems = {}, {}
    for name, (shortest, longest) in LIMITS.items():
        if name not in data:
            if name == "title" and not partial:
                problems[name] = "this field is required"
            elif name == "body" and not partial:
                fields[name] = ""
            continue
        value = data[name]
        if not isinstance(value, str):
            problems[name] = "must be a string"
        elif not shortest <= len(value) <= longest:
            problems[name] = f"must be {shortest} to {longest} characters"
        else:
            fields[name] = value
    if problems:
        raise ApiError(422, "invalid note", problems)
    return fields


def page_params(request):
    problems, values = {}, {}
    for name, default, highest in (("page", 1, None), ("per_page", 20, MAX_PER_PAGE)):
        raw = request.GET.get(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            problems[name] = "must be an integer"
            continue
        if value < 1 or (highest and value > highest):
            limit = f"1 to {highest}" if highest else "at least 1"
            problems[name] = f"must be {limit}"
        values[name] = value
    if problems:
        raise ApiError(422, "invalid page parameters", problems)
    return values["page"], values["per_page"]


def find_note(note_id):
    try:
        if note_id > MAX_ID:
            raise Note.DoesNotExist
        return Note.objects.get(pk=note_id)
    except Note.DoesNotExist:
        raise ApiError(404, f"note {note_id} not found") from None


def save(note, fields):
    for name, value in fields.items():
        setattr(note, name, value)
    # The job fills word_count in again after the change.
    note.word_count = None
    with transaction.atomic():
        note.save()
        jobs.count_words_later(note.pk)
    return note


def api(allowed):
    """JSON errors for ApiError and wrong methods; no CSRF (no cookie auth)."""

    def decorate(view):
        @csrf_exempt
        def wrapper(request, *args, **kwargs):
            if request.method not in allowed:
                return error(
                    405,
                    f"method {request.method} not allowed",
                    {"allowed": allowed},
                    Allow=", ".join(allowed),
                )
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message, exc.details)

        return wrapper

    return decorate


@api(["GET", "POST"])
def note_collection(request):
    if request.method == "POST":
        note = save(Note(), validate(read_json(request), partial=False))
        return JsonResponse(note.as_json(), status=201)
    page, per_page = page_params(request)
    total = Note.objects.count()
    start = (page - 1) * per_page
    items = Note.objects.all()[start : start + per_page] if start < total else []
    return JsonResponse(
        {
            "items": [note.as_json() for note in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


@api(["GET", "PUT", "PATCH", "DELETE"])
def note_detail(request, note_id):
    note = find_note(note_id)
    if request.method == "DELETE":
        note.delete()
        return HttpResponse(status=204)
    if request.method in {"PUT", "PATCH"}:
        fields = validate(read_json(request), partial=request.method == "PATCH")
        note = save(note, fields)
    return JsonResponse(note.as_json())


def bad_request(request, exception=None):
    return error(400, "bad request")


def forbidden(request, exception=None):
    return error(403, "forbidden")


def not_found(request, exception=None):
    return error(404, f"no such path: {request.path}")


def server_error(request):
    return error(500, "internal server error")
