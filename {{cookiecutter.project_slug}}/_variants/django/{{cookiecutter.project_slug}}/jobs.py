{% if cookiecutter.database == "postgres" %}
"""Background jobs, queued in PostgreSQL by procrastinate and run by bin/worker.

Define a job with `@app.task`, enqueue it with `job.defer(**kwargs)`. Inside a
transaction the job is queued only if the transaction commits.
https://procrastinate.readthedocs.io/en/stable/howto/django/configuration.html

A job whose worker dies mid-run is run again once the worker's heartbeat
lapses (retry_stalled_jobs below), so a job may run twice: make it safe to
repeat, as count_words is.
"""

from django.conf import settings
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from .models import Note

# A failing job runs JOBS_MAX_ATTEMPTS times in all (max_attempts counts the
# retries), B, B², B³... seconds apart (B = JOBS_RETRY_BACKOFF); then it stays
# in the database as "failed": Django admin (Procrastinate > Jobs) or
# `python manage.py failed_jobs`.
RETRY = RetryStrategy(
    max_attempts=settings.JOBS_MAX_ATTEMPTS - 1,
    exponential_wait=settings.JOBS_RETRY_BACKOFF,
)


@app.task(queue="default", retry=RETRY)
def count_words(note_id: int):
    note = Note.objects.filter(pk=note_id).first()
    if note is not None:
        # Skipped if the note changed meanwhile: its own job will count it.
        Note.objects.filter(pk=note.pk, updated_at=note.updated_at).update(
            word_count=len(note.body.split())
        )


def count_words_later(note_id: int):
    count_words.defer(note_id=note_id)


@app.periodic(cron=settings.JOBS_BACKFILL_CRON)
@app.task(queue="default", queueing_lock="backfill_word_counts", retry=RETRY)
def backfill_word_counts(timestamp: int):
    """Nightly: count the notes still without a count (e.g. a lost job)."""
    for note_id in Note.objects.filter(word_count__isnull=True).values_list(
        "pk", flat=True
    ):
        count_words(note_id)


@app.periodic(cron=settings.JOBS_RECOVER_CRON)
@app.task(queue="default", queueing_lock="retry_stalled_jobs", pass_context=True)
async def retry_stalled_jobs(context, timestamp: int):
    """Queue again the jobs of a worker that died (its heartbeat stopped)."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.JOBS_STALLED_AFTER
    )
    for job in stalled:
        await manager.retry_job(job)
{% else %}
"""Background jobs, queued in the SQLite database by huey and run by bin/worker.

Define a job with `@db_task(...)`, call it to enqueue it; `count_words_later`
shows how to enqueue only once the surrounding transaction commits.
https://huey.readthedocs.io/en/latest/django.html

huey takes a job off the queue when it starts it: a job running when the
worker is killed (kill -9, power loss) is not run again. On SIGTERM the worker
lets it finish for JOBS_SHUTDOWN_TIMEOUT seconds, then queues it again. Make
jobs safe to lose, as the nightly backfill does for count_words, and safe to
run twice.
"""

from django.conf import settings
from django.db import transaction
from huey import crontab, signals
from huey.contrib.djhuey import HUEY, db_periodic_task, db_task

from .models import Note

# A failing job runs JOBS_MAX_ATTEMPTS times in all, B, B², B³... seconds
# apart (B = JOBS_RETRY_BACKOFF); then its error is kept in the queue's result
# store: `python manage.py failed_jobs`.
RETRY = {
    "retries": settings.JOBS_MAX_ATTEMPTS - 1,
    "retry_delay": settings.JOBS_RETRY_BACKOFF,
    "retry_backoff": settings.JOBS_RETRY_BACKOFF,
}


@db_task(**RETRY)
def count_words(note_id: int):
    note = Note.objects.filter(pk=note_id).first()
    if note is not None:
        # Skipped if the note changed meanwhile: its own job will count it.
        Note.objects.filter(pk=note.pk, updated_at=note.updated_at).update(
            word_count=len(note.body.split())
        )


def count_words_later(note_id: int):
    # The queue has its own connection: enqueue after the commit, so a
    # rolled-back transaction enqueues nothing.
    transaction.on_commit(lambda: count_words(note_id))


@db_periodic_task(crontab(*settings.JOBS_BACKFILL_CRON.split()), **RETRY)
def backfill_word_counts():
    """Nightly: count the notes still without a count (e.g. a lost job)."""
    for note_id in Note.objects.filter(word_count__isnull=True).values_list(
        "pk", flat=True
    ):
        count_words.call_local(note_id)


@HUEY.signal(signals.SIGNAL_INTERRUPTED)
def requeue_interrupted(signal, task):
    """A job still running when the worker stops is queued again."""
    HUEY.enqueue(task)
{% endif %}
