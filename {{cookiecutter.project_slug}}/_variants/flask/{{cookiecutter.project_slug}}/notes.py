"""The notes JSON API: /api/notes and /api/notes/<id>."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, request

from . import jobs
from .database import begin_write, db
from .errors import ApiError
from .models import Note

bp = Blueprint("notes", __name__, url_prefix="/api/notes")

TITLE_MAX = 200
BODY_MAX = 10_000
PER_PAGE_DEFAULT = 20
PER_PAGE_MAX = 100
# Larger ids and pages cannot exist; refusing them keeps them out of SQL.
ID_MAX = 2**31 - 1
PAGE_MAX = 2**31 - 1
READ_ONLY = {"id", "word_count", "created_at", "updated_at"}


@bp.get("")
def list_notes():
    page = _page_param("page", 1, PAGE_MAX)
    per_page = _page_param("per_page", PER_PAGE_DEFAULT, PER_PAGE_MAX)
    total = db.session.scalar(db.select(db.func.count()).select_from(Note))
    notes = db.session.scalars(
        db.select(Note)
        .order_by(Note.created_at.desc(), Note.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return {
        "items": [note.to_dict() for note in notes],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


@bp.post("")
def create_note():
    data = _validated(_json_object(), partial=False)
    begin_write()
    note = Note(title=data["title"], body=data["body"])
    db.session.add(note)
    _changed(note)
    db.session.commit()
    return note.to_dict(), 201


@bp.get("/<int:note_id>")
def get_note(note_id: int):
    return _note_or_404(note_id).to_dict()


@bp.put("/<int:note_id>")
def replace_note(note_id: int):
    return _update(note_id, partial=False)


@bp.patch("/<int:note_id>")
def update_note(note_id: int):
    return _update(note_id, partial=True)


@bp.delete("/<int:note_id>")
def delete_note(note_id: int):
    begin_write()
    db.session.delete(_note_or_404(note_id))
    db.session.commit()
    return "", 204


def _update(note_id: int, *, partial: bool):
    data = _validated(_json_object(), partial=partial)
    begin_write()
    note = _note_or_404(note_id)
    for field, value in data.items():
        setattr(note, field, value)
    _changed(note)
    db.session.commit()
    return note.to_dict()


def _changed(note: Note) -> None:
    """The text changed: its word count is stale until the job counts again."""
    note.word_count = None
    db.session.flush()
    jobs.enqueue(jobs.count_words, note_id=note.id)


def _note_or_404(note_id: int) -> Note:
    note = db.session.get(Note, note_id) if note_id <= ID_MAX else None
    if note is None:
        abort(404, description=f"note {note_id} not found")
    return note


def _page_param(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(
            422,
            f"{name} must be a whole number from 1 to {maximum}",
            {name: raw[:100]},
        )
    return int(raw)


def _json_object() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    try:
        data = json.loads(request.get_data())
    except ValueError as exc:
        raise ApiError(400, "malformed JSON", {"reason": str(exc)}) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _validated(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The note fields in `data`, checked; every problem is listed in details."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field in data.keys() - READ_ONLY - {"title", "body"}:
        errors[field] = "unknown field"
    if not partial:
        data = {"body": "", **data}
    limits = {"title": (1, TITLE_MAX), "body": (0, BODY_MAX)}
    for field, (shortest, longest) in limits.items():
        if field not in data:
            if not partial:
                errors[field] = "this field is required"
            continue
        value = data[field]
        if not isinstance(value, str):
            errors[field] = "must be a string"
        elif not shortest <= len(value) <= longest:
            errors[field] = f"must be {shortest} to {longest} characters long"
        elif "\x00" in value:
            errors[field] = "must not contain NUL characters"
        elif field == "title" and not value.strip():
            errors[field] = "must not be blank"
        else:
            clean[field] = value
    if errors:
        raise ApiError(422, "invalid note", errors)
    return clean
