{% if cookiecutter.database == "postgres" %}
"""Background jobs with procrastinate and a real worker process (bin/worker)."""
{% else %}
"""Background jobs with huey and a real worker process (bin/worker)."""
{% endif %}

import os
import signal
import subprocess

import pytest
{% if cookiecutter.database == "postgres" %}
from sqlalchemy import text
{% endif %}

from {{ cookiecutter.project_slug }} import jobs
from {{ cookiecutter.project_slug }}.failed_jobs import failed_jobs
from {{ cookiecutter.project_slug }}.models import Note
from {{ cookiecutter.project_slug }}.settings import ROOT
from tests.jobs_for_tests import always_fails, events, flaky, record, slow
from tests.support import wait_until

# Settings for a quick worker (conftest.py sets the retries). The nightly
# backfill moves to 1 January so it cannot do the work of a job a test queued.
WORKER_ENV = {
    "JOBS_IMPORT_PATHS": "tests.jobs_for_tests",
    "JOBS_POLL_INTERVAL": "0.2",
    "JOBS_SHUTDOWN_TIMEOUT": "30",
    "JOBS_BACKFILL_CRON": "0 0 1 1 *",
{% if cookiecutter.database == "postgres" %}
    "JOBS_HEARTBEAT_INTERVAL": "0.5",
    "JOBS_STALLED_AFTER": "3",
    "JOBS_RECOVER_CRON": "* * * * * *",
{% endif %}
}
{% if cookiecutter.database == "postgres" %}
# procrastinate reads a sixth (seconds) field: fire every second.
EVERY_FEW_SECONDS = "* * * * * *"
# What the worker logs when SIGTERM reaches it.
STOPPING = "Stop requested"
{% else %}
# huey checks periodic jobs when the worker starts, then every minute.
EVERY_FEW_SECONDS = "* * * * *"
# What the worker logs when SIGTERM reaches it.
STOPPING = "Received SIGTERM"
{% endif %}


@pytest.fixture(autouse=True)
def empty_queue(app):
{% if cookiecutter.database == "postgres" %}
    with app.state.engine.begin() as connection:
        connection.execute(
            text("TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE")
        )
{% else %}
    jobs.huey.flush()
{% endif %}


@pytest.fixture
def job_dir(tmp_path):
    directory = tmp_path / "jobs"
    directory.mkdir()
    return directory


@pytest.fixture
def start_worker(job_dir, tmp_path):
    """Start bin/worker; every worker still running at the end is killed."""
    started = []

    def start(**overrides: str) -> subprocess.Popen:
        env = {**os.environ, **WORKER_ENV, "TEST_JOBS_DIR": str(job_dir), **overrides}
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("w") as output:
            process = subprocess.Popen(  # noqa: S603
                [ROOT / "bin" / "worker"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def queue(app, task, **kwargs) -> None:
    """Queue a job the way a request does: in a transaction that commits."""
    with app.state.write_session() as session:
        jobs.enqueue(session, task, **kwargs)
        session.commit()


def queued(app) -> int:
    """Jobs waiting to run, leaving out the worker's own periodic recovery."""
{% if cookiecutter.database == "postgres" %}
    with app.state.engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs"
                " WHERE status = 'todo' AND task_name <> :recovery"
            ),
            {"recovery": jobs.retry_stalled_jobs.name},
        )
{% else %}
    return jobs.huey.pending_count()
{% endif %}


def word_count(client, note_id: int):
    return client.get(f"/api/notes/{note_id}").json()["word_count"]


def test_a_new_note_gets_its_word_count_from_the_worker(client, start_worker):
    note = client.post("/api/notes", json={"title": "t", "body": "one two three"})
    note_id = note.json()["id"]
    start_worker()
    wait_until(lambda: word_count(client, note_id) == 3)
    client.patch(f"/api/notes/{note_id}", json={"body": "now five words in here"})
    wait_until(lambda: word_count(client, note_id) == 5)


def test_a_rolled_back_transaction_queues_nothing(app):
    with app.state.write_session() as session:
        note = Note(title="never saved")
        session.add(note)
        session.flush()
        jobs.enqueue(session, jobs.count_words, note_id=note.id)
        session.rollback()
    assert queued(app) == 0
    queue(app, jobs.count_words, note_id=1)
    assert queued(app) == 1


def test_a_job_that_fails_twice_succeeds_the_third_time(app, start_worker, job_dir):
    queue(app, flaky, key="flaky", failures=2)
    start_worker()
    wait_until(lambda: "ok" in events("flaky", job_dir))
    assert events("flaky", job_dir) == ["run", "run", "run", "ok"]


def test_a_job_that_always_fails_stops_and_is_kept_as_failed(
    app, start_worker, job_dir
):
    queue(app, always_fails, key="doomed")
    start_worker()
    failed = wait_until(
        lambda: [job for job in failed_jobs() if "always_fails" in job["task"]]
    )
    assert len(failed) == 1
    assert failed[0]["kwargs"] == {"key": "doomed"}
    assert events("doomed", job_dir) == ["run", "run", "run"]


def test_sigterm_lets_the_job_in_flight_finish(app, start_worker, job_dir):
    queue(app, slow, key="graceful")
    worker = start_worker()
    wait_until(lambda: events("graceful", job_dir) == ["start"])
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: STOPPING in worker.log.read_text())
    queue(app, record, key="too-late")
    (job_dir / "graceful.release").touch()
    assert worker.wait(timeout=120) == 0
    assert events("graceful", job_dir) == ["start", "done"]
    assert events("too-late", job_dir) == []
    assert queued(app) == 1


{% if cookiecutter.database == "postgres" %}
def test_a_job_outlasting_the_stop_timeout_runs_again(app, start_worker, job_dir):
    """procrastinate cannot interrupt a sync job: the worker waits for it.

    systemd and Docker then kill it (SIGKILL after their stop timeout), and the
    job runs again on the next worker once the dead one's heartbeat lapses.
    """
    queue(app, slow, key="stubborn")
    worker = start_worker(JOBS_SHUTDOWN_TIMEOUT="1")
    wait_until(lambda: events("stubborn", job_dir) == ["start"])
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "still running after graceful timeout" in worker.log.read_text())
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    (job_dir / "stubborn.release").touch()
    start_worker()
    wait_until(lambda: "done" in events("stubborn", job_dir))
    assert events("stubborn", job_dir) == ["start", "start", "done"]
{% else %}
def test_sigterm_puts_back_a_job_that_outlasts_the_timeout(app, start_worker, job_dir):
    queue(app, slow, key="stubborn")
    worker = start_worker(JOBS_SHUTDOWN_TIMEOUT="1")
    wait_until(lambda: events("stubborn", job_dir) == ["start"])
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0
    (job_dir / "stubborn.release").touch()
    start_worker()
    wait_until(lambda: "done" in events("stubborn", job_dir))
    assert events("stubborn", job_dir) == ["start", "start", "done"]
{% endif %}
{% if cookiecutter.database == "postgres" %}


def test_a_job_whose_worker_was_killed_runs_again(app, start_worker, job_dir):
    queue(app, slow, key="killed")
    first = start_worker()
    wait_until(lambda: events("killed", job_dir) == ["start"])
    first.send_signal(signal.SIGKILL)
    first.wait()
    (job_dir / "killed.release").touch()
    start_worker()
    wait_until(lambda: "done" in events("killed", job_dir))
    assert events("killed", job_dir) == ["start", "start", "done"]


def test_two_workers_never_run_the_same_job_twice(app, start_worker, job_dir):
    keys = [f"job-{n}" for n in range(40)]
    with app.state.write_session() as session:
        for key in keys:
            jobs.enqueue(session, record, key=key)
        session.commit()
    start_worker()
    start_worker()

    def finished():
        with app.state.engine.connect() as connection:
            return not connection.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs"
                    " WHERE status IN ('todo', 'doing')"
                )
            )

    wait_until(finished)
    assert {key: events(key, job_dir) for key in keys} == {key: ["run"] for key in keys}
{% else %}


def test_jobs_queued_behind_a_killed_worker_survive(client, app, start_worker, job_dir):
    """SQLite (huey) keeps every job still in the queue when a worker is killed.

    The jobs in flight (up to JOBS_CONCURRENCY) are not run again: huey takes
    a job off the queue when it starts it. For word counts the nightly backfill
    repairs that (docs/jobs.md). One job at a time, so the note's job waits.
    """
    queue(app, slow, key="killed")
    note = client.post("/api/notes", json={"title": "t", "body": "queued behind"})
    first = start_worker(JOBS_CONCURRENCY="1")
    wait_until(lambda: events("killed", job_dir) == ["start"])
    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker()
    wait_until(lambda: word_count(client, note.json()["id"]) == 2)
    assert events("killed", job_dir) == ["start"]
{% endif %}


def test_the_periodic_backfill_counts_notes_left_without_a_count(
    client, app, start_worker
):
    with app.state.write_session() as session:
        note = Note(title="lost job", body="its count was never queued")
        session.add(note)
        session.commit()
    assert queued(app) == 0
    start_worker(JOBS_BACKFILL_CRON=EVERY_FEW_SECONDS)
    wait_until(lambda: word_count(client, note.id) == 5)
