"""The notes JSON API: /api/notes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import jobs
from .errors import NotFound
from .models import Note
from .schemas import NoteIn, NoteOut, NotePage, NotePatch

router = APIRouter(prefix="/api/notes", tags=["notes"])

# Ids are 64-bit; anything else cannot name a note.
NoteId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def read_session(request: Request):
    with request.app.state.read_session() as session:
        yield session


def write_session(request: Request):
    with request.app.state.write_session() as session:
        yield session


Reader = Annotated[Session, Depends(read_session)]
Writer = Annotated[Session, Depends(write_session)]


def get_note(session: Session, note_id: int) -> Note:
    note = session.get(Note, note_id)
    if note is None:
        raise NotFound(f"note {note_id} not found")
    return note


def save(session: Session, note: Note) -> Note:
    """Commit, then queue the word count (a rollback queues nothing)."""
    note.word_count = None
    session.add(note)
    session.flush()
    jobs.enqueue(session, jobs.count_words, note_id=note.id)
    session.commit()
    return note


@router.get("")
def list_notes(
    session: Reader,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> NotePage:
    total = session.scalar(select(func.count()).select_from(Note))
    notes = session.scalars(
        select(Note)
        .order_by(Note.created_at.desc(), Note.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    items = [NoteOut.model_validate(note) for note in notes]
    return NotePage(items=items, page=page, per_page=per_page, total=total or 0)


@router.post("", status_code=201)
def create_note(
    data: NoteIn, session: Writer, request: Request, response: Response
) -> NoteOut:
    note = save(session, Note(**data.model_dump()))
    response.headers["Location"] = str(request.url_for("read_note", note_id=note.id))
    return NoteOut.model_validate(note)


@router.get("/{note_id}")
def read_note(note_id: NoteId, session: Reader) -> NoteOut:
    return NoteOut.model_validate(get_note(session, note_id))


@router.put("/{note_id}")
def replace_note(note_id: NoteId, data: NoteIn, session: Writer) -> NoteOut:
    note = get_note(session, note_id)
    note.title, note.body = data.title, data.body
    return NoteOut.model_validate(save(session, note))


@router.patch("/{note_id}")
def update_note(note_id: NoteId, data: NotePatch, session: Writer) -> NoteOut:
    note = get_note(session, note_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(note, field, value)
    return NoteOut.model_validate(save(session, note))


@router.delete("/{note_id}", status_code=204)
def delete_note(note_id: NoteId, session: Writer) -> None:
    session.delete(get_note(session, note_id))
    session.commit()
