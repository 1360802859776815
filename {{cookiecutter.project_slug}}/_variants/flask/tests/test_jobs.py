"""The job queue with real worker processes (bin/worker) on the test database."""

import signal
import subprocess
import time
from pathlib import Path

import pytest
{% if cookiecutter.database == "postgres" %}
from sqlalchemy import text
{% endif %}

from {{ cookiecutter.project_slug }}.database import db
from {{ cookiecutter.project_slug }}.jobs import enqueue
from {{ cookiecutter.project_slug }}.models import Note
{% if cookiecutter.database == "sqlite" %}
from {{ cookiecutter.project_slug }}.queue import queue
{% endif %}
from tests import jobs_for_tests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Generous: a loaded CI machine can take many seconds to start a worker.
TIMEOUT = 120


def wait_until(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def start_worker(test_env, tmp_path):
    workers = []

    def start(**extra: str) -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(workers)}.log").open("w")
        worker = subprocess.Popen(  # noqa: S603 (our own bin/worker)
            [PROJECT_ROOT / "bin" / "worker"],
            cwd=PROJECT_ROOT,
            env={**test_env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.fixture(autouse=True)
def _empty_queue(app):
    with app.app_context():
{% if cookiecutter.database == "postgres" %}
        db.session.execute(text("DELETE FROM procrastinate_jobs"))
        db.session.commit()
{% else %}
        queue.flush()
{% endif %}


def defer(task, **kwargs) -> None:
    """Queue a job the way a request does: enqueue(), then commit."""
    enqueue(task, **kwargs)
    db.session.commit()


def queued_jobs(app) -> int:
    with app.app_context():
{% if cookiecutter.database == "postgres" %}
        return db.session.scalar(text("SELECT count(*) FROM procrastinate_jobs"))
{% else %}
        return queue.pending_count()
{% endif %}


def word_count(client, note_id: int):
    return client.get(f"/api/notes/{note_id}").json["word_count"]


def test_a_created_note_gets_its_word_count_from_the_worker(client, start_worker):
    note = client.post("/api/notes", json={"title": "t", "body": "one two three"}).json
    assert note["word_count"] is None
    start_worker()
    assert wait_until(lambda: word_count(client, note["id"]), "word_count") == 3
    client.patch(f"/api/notes/{note['id']}", json={"body": "four words are here"})
    assert wait_until(lambda: word_count(client, note["id"]) == 4, "recount")


def test_a_rolled_back_transaction_enqueues_nothing(app):
    with app.app_context():
        note = Note(title="t", body="b")
        db.session.add(note)
        db.session.flush()
        enqueue(jobs_for_tests.note_run, path="/dev/null", number=1)
        db.session.rollback()
    assert queued_jobs(app) == 0
    with app.app_context():
        db.session.add(Note(title="t", body="b"))
        enqueue(jobs_for_tests.note_run, path="/dev/null", number=1)
        db.session.commit()
    assert queued_jobs(app) == 1


def test_a_job_that_fails_twice_then_succeeds_runs_three_times(
    app, start_worker, tmp_path
):
    runs = tmp_path / "runs"
    with app.app_context():
        defer(jobs_for_tests.flaky, path=str(runs), failures=2)
    start_worker()
    wait_until(lambda: len(lines(runs)) == 3, "three runs")
    assert failed_jobs(app) == []
    assert len(lines(runs)) == 3


def failed_jobs(app) -> list[str]:
    """What `flask --app {{ cookiecutter.project_slug }} jobs failed` prints."""
    result = app.test_cli_runner().invoke(args=["jobs", "failed"])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_a_job_that_always_fails_stops_after_the_bound_and_is_kept(
    app, start_worker, tmp_path
):
    runs = tmp_path / "runs"
    with app.app_context():
        defer(jobs_for_tests.always_fails, path=str(runs))
    start_worker()
    failed = wait_until(lambda: failed_jobs(app), "a failed job")
    assert len(failed) == 1
    assert "always failing on purpose" in failed[0] or "always_fails" in failed[0]
    time.sleep(1)  # no fourth run comes later
    assert len(lines(runs)) == 3


def test_sigterm_lets_the_running_job_finish_and_exits_0(app, start_worker, tmp_path):
    runs, release = tmp_path / "runs", tmp_path / "release"
    with app.app_context():
        defer(jobs_for_tests.slow, path=str(runs), release=str(release))
    worker = start_worker()
    wait_until(lambda: lines(runs) == ["start"], "the job to start")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the worker is shutting down while the job still runs
    assert worker.poll() is None
    release.touch()
    assert worker.wait(timeout=TIMEOUT) == 0
    assert lines(runs) == ["start", "done"]


{% if cookiecutter.database == "postgres" %}
def test_a_job_killed_with_its_worker_runs_again_on_a_new_worker(
    app, start_worker, tmp_path
):
    runs, release = tmp_path / "runs", tmp_path / "release"
    with app.app_context():
        defer(jobs_for_tests.slow, path=str(runs), release=str(release))
    first = start_worker()
    wait_until(lambda: lines(runs) == ["start"], "the job to start")
    first.kill()
    first.wait()
    release.touch()
    start_worker()
    # The dead worker's heartbeat lapses; the new worker runs the job again.
    wait_until(lambda: lines(runs) == ["start", "start", "done"], "a second run")


def test_two_workers_never_run_the_same_job_twice(app, start_worker, tmp_path):
    runs = tmp_path / "runs"
    with app.app_context():
        for number in range(60):
            defer(jobs_for_tests.note_run, path=str(runs), number=number)
    start_worker()
    start_worker()
    wait_until(lambda: len(lines(runs)) >= 60, "60 runs")
    time.sleep(0.5)
    assert sorted(map(int, lines(runs))) == list(range(60))
{% else %}
def test_sigkill_loses_only_the_job_in_flight(app, client, start_worker, tmp_path):
    # huey takes a job off the queue before running it: SIGKILL in the middle
    # loses that one run (docs: the nightly backfill repairs word counts).
    # Jobs still waiting in the queue survive the kill.
    runs, release = tmp_path / "runs", tmp_path / "release"
    with app.app_context():
        defer(jobs_for_tests.slow, path=str(runs), release=str(release))
    first = start_worker(JOBS_CONCURRENCY="1")
    wait_until(lambda: lines(runs) == ["start"], "the job to start")
    note = client.post("/api/notes", json={"title": "t", "body": "a b"}).json
    first.kill()
    first.wait()
    release.touch()
    start_worker()
    assert wait_until(lambda: word_count(client, note["id"]), "the queued job") == 2
    assert lines(runs) == ["start"]
{% endif %}


def test_the_periodic_backfill_fills_missing_word_counts(app, client, start_worker):
    with app.app_context():
        note = Note(title="t", body="counted by the backfill")
        db.session.add(note)  # no job enqueued: only the backfill can fill it
        db.session.commit()
        note_id = note.id
{% if cookiecutter.database == "postgres" %}
    # procrastinate accepts a seconds field: every second.
    start_worker(JOBS_BACKFILL_CRON="* * * * * *")
{% else %}
    # huey checks periodic jobs when the worker starts, then every minute.
    start_worker(JOBS_BACKFILL_CRON="* * * * *")
{% endif %}
    assert wait_until(lambda: word_count(client, note_id), "the backfill") == 4
