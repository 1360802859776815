{% if cookiecutter.database == "postgres" %}
"""Background jobs, queued in PostgreSQL by procrastinate (docs/jobs.md).

Define a job with `@app.task`; queue it from a request with `enqueue()`, which
joins the request's transaction: a rollback queues nothing. `bin/worker` runs
the jobs, the periodic ones and the retry of jobs whose worker died.
https://procrastinate.readthedocs.io/
"""

from functools import lru_cache

import procrastinate
from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import make_engine, make_sessionmakers
from .models import Note
from .settings import get_settings

settings = get_settings()

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=settings.database_url),
    import_paths=settings.jobs_import_paths,
    worker_defaults={
        "concurrency": settings.jobs_concurrency,
        "fetch_job_polling_interval": settings.jobs_poll_interval,
        "update_heartbeat_interval": settings.jobs_heartbeat_interval,
        "stalled_worker_timeout": settings.jobs_stalled_after,
        "shutdown_graceful_timeout": settings.jobs_shutdown_timeout,
        # Finished jobs leave the table; failed ones stay to be looked at.
        "delete_jobs": "successful",
    },
)

# A failing job is tried JOBS_MAX_ATTEMPTS times in all, waiting B, B², B³...
# seconds in between (B = JOBS_RETRY_BACKOFF), then stays in the
# procrastinate_jobs table with status "failed": python -m {{ cookiecutter.project_slug }}.failed_jobs
RETRY = procrastinate.RetryStrategy(
    max_attempts=settings.jobs_max_attempts - 1,  # procrastinate counts retries
    exponential_wait=settings.jobs_retry_backoff,
)


def enqueue(session: Session, task: procrastinate.tasks.Task, **kwargs) -> None:
    """Queue `task` in the session's transaction: nothing is queued on rollback."""
    connection = session.connection().connection.driver_connection
    task.configure(connection=connection).defer(**kwargs)


@lru_cache
def sessions():
    return make_sessionmakers(make_engine(settings))[1]


@app.task(retry=RETRY)
def count_words(note_id: int) -> None:
    """Fill in a note's word_count; queued when a note is created or changed."""
    fill_word_counts(select(Note).where(Note.id == note_id))


@app.periodic(cron=settings.jobs_backfill_cron)
@app.task(queueing_lock="backfill_word_counts")
def backfill_word_counts(timestamp: int) -> None:
    """Nightly: count the words of every note still without a count."""
    fill_word_counts(select(Note).where(Note.word_count.is_(None)))


@app.periodic(cron=settings.jobs_recover_cron)
@app.task(queueing_lock="retry_stalled_jobs", pass_context=True)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Run again the jobs of workers that died (no heartbeat for a while)."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.jobs_stalled_after
    )
    for job in stalled:
        await manager.retry_job(job)
{% else %}
"""Background jobs, queued in the SQLite database by huey (docs/jobs.md).

Define a job with `@huey.task`; queue it from a request with `enqueue()`,
which sends it when the request's transaction commits: a rollback queues
nothing. `bin/worker` runs the jobs and the periodic ones.

Guarantee: queued jobs survive any crash, and a stopping worker (SIGTERM)
puts back a job it could not finish. A worker killed outright (SIGKILL, power
loss) loses the one job it was running: huey takes a job off the queue when
it starts; let a periodic job repair that, as the word-count backfill does.
https://huey.readthedocs.io/
"""

import time
from functools import lru_cache
from importlib import import_module

from huey import SqliteHuey, crontab, signals
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from .db import SQLITE_BUSY_TIMEOUT_MS, make_engine, make_sessionmakers
from .models import Note
from .settings import get_settings

settings = get_settings()

# The queue lives in the app's own database file, in huey's tables (kv,
# schedule, task, counter): one file to back up. Jobs return nothing worth
# keeping, so huey's result store (kv) holds only the failed-job records.
huey = SqliteHuey(
    name="{{ cookiecutter.project_slug }}",
    filename=make_url(settings.database_url).database,
    timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    results=False,
)

# A failing job is tried JOBS_MAX_ATTEMPTS times in all, waiting B, B², B³...
# seconds in between (B = JOBS_RETRY_BACKOFF), then is recorded as failed:
# python -m {{ cookiecutter.project_slug }}.failed_jobs
RETRY = {
    "retries": settings.jobs_max_attempts - 1,
    "retry_delay": settings.jobs_retry_backoff,
    "retry_backoff": settings.jobs_retry_backoff,
}
FAILED = "failed:"


def enqueue(session: Session, task, **kwargs) -> None:
    """Queue `task` when the session commits: nothing is queued on rollback."""
    session.info.setdefault("jobs", []).append((task, kwargs))


@event.listens_for(Session, "after_commit")
def _send_jobs(session: Session) -> None:
    for task, kwargs in session.info.pop("jobs", []):
        task(**kwargs)


@event.listens_for(Session, "after_soft_rollback")
def _drop_jobs(session: Session, previous_transaction) -> None:
    session.info.pop("jobs", None)


@huey.signal(signals.SIGNAL_ERROR)
def _record_failure(signal, task, exception=None) -> None:
    if not task.retries:  # that was the last attempt
        record = {"task": task.name, "kwargs": task.kwargs, "error": repr(exception)}
        huey.put(FAILED + task.id, {**record, "failed_at": time.time()})


@huey.signal(signals.SIGNAL_INTERRUPTED)
def _requeue_interrupted(signal, task) -> None:
    """A job still running when a stopping worker gave up on it runs again."""
    huey.enqueue(task)


@lru_cache
def sessions():
    return make_sessionmakers(make_engine(settings))[1]


@huey.task(**RETRY)
def count_words(note_id: int) -> None:
    """Fill in a note's word_count; queued when a note is created or changed."""
    fill_word_counts(select(Note).where(Note.id == note_id))


@huey.periodic_task(crontab(*settings.jobs_backfill_cron.split()))
def backfill_word_counts() -> None:
    """Nightly: count the words of every note still without a count."""
    fill_word_counts(select(Note).where(Note.word_count.is_(None)))
{% endif %}


def fill_word_counts(query) -> None:
    with sessions()() as session:
        for note in session.scalars(query):
            note.word_count = len(note.body.split())
        session.commit()
{% if cookiecutter.database == "sqlite" %}


# Extra job modules (JOBS_IMPORT_PATHS), e.g. the tests' own jobs.
for _module in settings.jobs_import_paths:
    import_module(_module)
{% endif %}
