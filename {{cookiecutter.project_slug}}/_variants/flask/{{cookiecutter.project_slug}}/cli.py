"""Commands: `flask --app {{ cookiecutter.project_slug }} collectstatic`, `... jobs failed`."""

from __future__ import annotations

import shutil

import click
from flask import Flask, current_app
from flask.cli import AppGroup
{% if cookiecutter.database == "postgres" %}
from sqlalchemy import text

from .database import db
{% else %}
from huey.utils import Error

from .queue import queue
{% endif %}


@click.command("collectstatic")
def collectstatic() -> None:
    """Copy the app's static/ into STATIC_ROOT, replacing what was there."""
    source = current_app.static_folder
    target = current_app.config["SETTINGS"].static_root
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    # Swap in one step so nginx never serves a half-copied directory.
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)
    count = sum(1 for path in target.rglob("*") if path.is_file())
    click.echo(f"{count} static files in {target}")


jobs_group = AppGroup("jobs", help="The background job queue.")


@jobs_group.command("failed")
def failed_jobs() -> None:
    """List the jobs that failed for good (every retry used up)."""
{% if cookiecutter.database == "postgres" %}
    rows = db.session.execute(
        text(
            "SELECT id, task_name, args, attempts FROM procrastinate_jobs"
            " WHERE status = 'failed' ORDER BY id"
        )
    )
    count = 0
    for job_id, task, args, attempts in rows:
        count += 1
        click.echo(f"{job_id}\t{task}\t{args}\tattempts={attempts}")
{% else %}
    count = 0
    for task_id, value in queue.all_results().items():
        result = queue.serializer.deserialize(value)
        if isinstance(result, Error):
            count += 1
            info = result.metadata
            click.echo(f"{task_id}\t{info.get('error')}")
{% endif %}
    click.echo(f"{count} failed jobs", err=True)


def register(app: Flask) -> None:
    app.cli.add_command(collectstatic)
    app.cli.add_command(jobs_group)
