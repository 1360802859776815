"""Background jobs, run by bin/worker (make worker).

Define a job with @job, enqueue it from a request with enqueue(job, **kwargs):
it is queued when the request's transaction commits, never if it rolls back.
Arguments must be JSON values (ids, not objects).
"""

from sqlalchemy import select

from .database import db
from .models import Note
from .queue import enqueue, job, periodic, settings

__all__ = ["backfill_word_counts", "count_words", "enqueue"]


def words_in(text: str) -> int:
    return len(text.split())


@job()
def count_words(note_id: int) -> None:
    """Fill in a note's word_count (the notes API enqueues this on each change)."""
    note = db.session.get(Note, note_id)
    if note is None:  # deleted meanwhile
        return
    note.word_count = words_in(note.body)
    db.session.commit()


@periodic(cron=settings.backfill_cron)
def backfill_word_counts() -> None:
    """Nightly: count the notes still without a word_count (e.g. a lost enqueue)."""
    notes = db.session.scalars(select(Note).where(Note.word_count.is_(None)))
    for note in notes:
        note.word_count = words_in(note.body)
    db.session.commit()
