"""Plain SQLAlchemy 2 for the bare FastAPI and Flask references."""

import os
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def _url():
    url = make_url(os.environ["DATABASE_URL"])
    if url.drivername in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3, as the apps
    return url


# Connections stay open across requests, and there are as many as requests
# at once (wrk's 16 connections), so no request opens one or waits for one.
engine = create_engine(_url(), pool_size=16, max_overflow=0)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    word_count: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def select1():
    with engine.connect() as connection:
        connection.execute(text("SELECT 1")).scalar()


def note_by_id(note_id):
    """The row as a JSON-ready dict, or None."""
    with Session(engine) as session:
        note = session.get(Note, note_id)
        if note is None:
            return None
        return {
            "id": note.id,
            "title": note.title,
            "body": note.body,
            "word_count": note.word_count,
            "created_at": note.created_at.isoformat(),
            "updated_at": note.updated_at.isoformat(),
        }
