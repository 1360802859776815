"""The notes JSON API: /api/notes.

The endpoints are plain `def` functions, which FastAPI runs in its threadpool
(SQLAlchemy here is sync). Each one opens its session in a `with` block and
returns its JSON as a Response, so one request is one trip through the
threadpool: a `yield` dependency for the session would add two more (its
set-up and its clean-up each run in the threadpool), and a model returned for
FastAPI to check against `response_model` one more. Those trips cost about a
quarter of the CPU time of a read in napkin's benchmark (`make bench` in the
template's repository). `response_model` still documents each answer in the
OpenAPI schema.
"""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import jobs
from .errors import NotFound
from .models import Note
from .schemas import NoteIn, NoteOut, NotePage, NotePatch

router = APIRouter(prefix="/api/notes", tags=["notes"])

# Ids are 64-bit; anything else cannot name a note.
NoteId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def reading(request: Request) -> Session:
    """A session for a request that only reads."""
    return request.app.state.read_session()


def writing(request: Request) -> Session:
    """A session whose transaction will write (SQLite: BEGIN IMMEDIATE)."""
    return request.app.state.write_session()


def as_json(model: BaseModel, status_code: int = 200, **headers: str) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        headers=headers or None,
        media_type="application/json",
    )


def get_note(session: Session, note_id: int) -> Note:
    note = session.get(Note, note_id)
    if note is None:
        raise NotFound(f"note {note_id} not found")
    return note


def save(session: Session, note: Note) -> NoteOut:
    """Commit, then queue the word count (a rollback queues nothing)."""
    note.word_count = None
    session.add(note)
    session.flush()
    jobs.enqueue(session, jobs.count_words, note_id=note.id)
    session.commit()
    return NoteOut.model_validate(note)


@router.get("", response_model=NotePage)
def list_notes(
    request: Request,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    with reading(request) as session:
        total = session.scalar(select(func.count()).select_from(Note)) or 0
        notes = session.scalars(
            select(Note)
            .order_by(Note.created_at.desc(), Note.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        items = [NoteOut.model_validate(note) for note in notes]
    return as_json(NotePage(items=items, page=page, per_page=per_page, total=total))


@router.post("", status_code=201, response_model=NoteOut)
def create_note(data: NoteIn, request: Request) -> Response:
    with writing(request) as session:
        note = save(session, Note(**data.model_dump()))
    location = str(request.url_for("read_note", note_id=note.id))
    return as_json(note, 201, Location=location)


@router.get("/{note_id}", response_model=NoteOut)
def read_note(note_id: NoteId, request: Request) -> Response:
    with reading(request) as session:
        note = NoteOut.model_validate(get_note(session, note_id))
    return as_json(note)


@router.put("/{note_id}", response_model=NoteOut)
def replace_note(note_id: NoteId, data: NoteIn, request: Request) -> Response:
    with writing(request) as session:
        note = get_note(session, note_id)
        note.title, note.body = data.title, data.body
        return as_json(save(session, note))


@router.patch("/{note_id}", response_model=NoteOut)
def update_note(note_id: NoteId, data: NotePatch, request: Request) -> Response:
    with writing(request) as session:
        note = get_note(session, note_id)
        for field, value in data.model_dump(exclude_unset=True).items():
            setattr(note, field, value)
        return as_json(save(session, note))


@router.delete("/{note_id}", status_code=204)
def delete_note(note_id: NoteId, request: Request) -> Response:
    with writing(request) as session:
        session.delete(get_note(session, note_id))
        session.commit()
    return Response(status_code=204)
