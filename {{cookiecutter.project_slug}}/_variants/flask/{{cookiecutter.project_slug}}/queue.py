"""The job queue machinery behind jobs.py: the database is the queue.

{% if cookiecutter.database == "postgres" %}
PostgreSQL: procrastinate (https://procrastinate.readthedocs.io/), jobs in the
procrastinate_* tables that `make migrate` creates.
{% else %}
SQLite: huey's SQLite storage (https://huey.readthedocs.io/), in a file beside
the database (`<name>-jobs.sqlite3`), so its tables never mix with the models.
{% endif %}
"""

from __future__ import annotations

import functools
import importlib
{% if cookiecutter.database == "sqlite" %}
import logging
{% endif %}
from collections.abc import Callable
{% if cookiecutter.database == "sqlite" %}
from pathlib import Path
{% endif %}
from typing import Any

{% if cookiecutter.database == "postgres" %}
import procrastinate
{% else %}
from huey import SqliteHuey, crontab
from sqlalchemy import event
from sqlalchemy.orm import Session
{% endif %}

from .settings import Settings

settings = Settings.from_env()
{% if cookiecutter.database == "sqlite" %}
logger = logging.getLogger(__name__)
PENDING = "jobs_to_enqueue"
{% endif %}
{% if cookiecutter.database == "postgres" %}

conninfo = settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
queue = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=conninfo),
    # Modules whose jobs the worker must know besides jobs.py (tests add theirs).
    import_paths=settings.jobs_import_paths,
)
{% else %}

_db = Path(settings.database_url.removeprefix("sqlite:///"))
queue = SqliteHuey(
    name="jobs",
    filename=str(_db.with_name(f"{_db.stem}-jobs{_db.suffix}")),
    # Keep the error of a job that failed for good (`flask jobs failed`), not
    # of each attempt that will be retried.
    store_intermediate_errors=False,
)
{% endif %}
_flask_app = None


def _in_app_context(function: Callable) -> Callable:
    """Jobs run inside the Flask app, so they use db.session like a request."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # One Flask app per worker process, made on first use (imported here:
        # the app's modules import this one).
        global _flask_app
        if _flask_app is None:
            from . import create_app

            _flask_app = create_app()
        with _flask_app.app_context():
            return function(*args, **kwargs)

    return wrapper


def job(retries: int | None = None, backoff: float | None = None) -> Callable:
    """Make a function a background job.

    A job that raises is run again up to `retries` times (default:
    JOBS_MAX_ATTEMPTS - 1), waiting backoff, backoff**2, ... seconds (default
    JOBS_RETRY_BACKOFF); then it is kept as failed (`flask jobs failed`).
    """
    if retries is None:
        retries = max(settings.jobs_max_attempts - 1, 0)
    if backoff is None:
        backoff = settings.jobs_retry_backoff

    def decorate(function: Callable) -> Any:
{% if cookiecutter.database == "postgres" %}
        retry = procrastinate.RetryStrategy(
            max_attempts=retries, exponential_wait=backoff
        )
        return queue.task(
            name=f"{function.__module__}.{function.__name__}",
            retry=retry if retries else False,
            pass_context=False,
        )(_in_app_context(function))
{% else %}
        return queue.task(
            retries=retries,
            retry_delay=backoff,
            retry_backoff=backoff,
            name=f"{function.__module__}.{function.__name__}",
        )(_in_app_context(function))
{% endif %}

    return decorate


def periodic(cron: str) -> Callable:
    """Run a function on a schedule (`minute hour day month weekday`, as cron)."""

    def decorate(function: Callable) -> Any:
{% if cookiecutter.database == "postgres" %}
        name = f"{function.__module__}.{function.__name__}"

        @functools.wraps(function)
        def run(timestamp: int) -> None:
            # procrastinate passes the scheduled time; our periodic jobs ignore it.
            function()

        task = queue.task(name=name, pass_context=False)(_in_app_context(run))
        return queue.periodic(cron=cron, periodic_id=name)(task)
{% else %}
        minute, hour, day, month, weekday = cron.split()
        return queue.periodic_task(
            crontab(minute, hour, day, month, weekday),
            name=f"{function.__module__}.{function.__name__}",
        )(_in_app_context(function))
{% endif %}

    return decorate


{% if cookiecutter.database == "postgres" %}
def enqueue(task: Any, **kwargs: Any) -> None:
    """Queue `task(**kwargs)` in the current transaction.

    The job is a row written on the session's own connection: it is queued
    when the transaction commits, and a transaction that rolls back queues
    nothing.
    """
    from .database import db

    connection = db.session.connection().connection.driver_connection
    task.configure(connection=connection).defer(**kwargs)


{% else %}
def enqueue(task: Any, **kwargs: Any) -> None:
    """Queue `task(**kwargs)` when the current transaction commits.

    A transaction that rolls back enqueues nothing. The jobs live in a file of
    their own, so the enqueue follows the commit: if it fails, the error is
    logged and the change stays saved (the nightly backfill in jobs.py
    catches up).
    """
    from .database import db

    db.session.info.setdefault(PENDING, []).append((task, kwargs))


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for task, kwargs in session.info.pop(PENDING, []):
        try:
            task(**kwargs)
        except Exception:
            logger.exception("could not enqueue %s(%s)", task.name, kwargs)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING, None)


{% endif %}
def import_extra_modules() -> None:
    for name in settings.jobs_import_paths:
        importlib.import_module(name)
