"""Background jobs through a real bin/worker on the test database."""

import json
import signal
import subprocess
import sys
import uuid

import pytest
from conftest import ROOT, enqueue, process_env, stop, wait_until
{% if cookiecutter.database == "postgres" %}
from django.db import connection, transaction
{% else %}
from django.db import transaction
{% endif %}

from {{ cookiecutter.project_slug }} import jobs
from {{ cookiecutter.project_slug }}.models import Note
from tests import jobs_for_tests as test_jobs


def lines(log):
    return log.read_text().splitlines() if log.exists() else []


def count(log, *words):
    return lines(log).count(" ".join(words))


def word_count(client, note_id):
    return client.get(f"/api/notes/{note_id}").json()["word_count"]


def failed_jobs():
    result = subprocess.run(
        [sys.executable, "manage.py", "failed_jobs"],
        cwd=ROOT,
        env=process_env(JOBS_IMPORT_PATHS="tests.jobs_for_tests"),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def queued_jobs():
{% if cookiecutter.database == "postgres" %}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
        return cursor.fetchone()[0]
{% else %}
    from huey.contrib.djhuey import HUEY

    return HUEY.pending_count() + HUEY.scheduled_count()
{% endif %}


def test_creating_a_note_enqueues_a_job_the_worker_runs(queue, client, start_worker):
    response = client.post(
        "/api/notes",
        json.dumps({"title": "Jobs", "body": "the worker counts these five"}),
        content_type="application/json",
    )
    note_id = response.json()["id"]
    assert word_count(client, note_id) is None
    start_worker()
    assert wait_until(lambda: word_count(client, note_id) == 5, what="word_count")

    client.patch(
        f"/api/notes/{note_id}",
        json.dumps({"body": "now two"}),
        content_type="application/json",
    )
    assert wait_until(lambda: word_count(client, note_id) == 2, what="recount")


def test_a_rolled_back_transaction_enqueues_nothing(queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        note = Note.objects.create(title="never saved")
        jobs.count_words_later(note.pk)
        raise RuntimeError("roll back")
    assert queued_jobs() == 0

    with transaction.atomic():
        note = Note.objects.create(title="saved")
        jobs.count_words_later(note.pk)
    assert queued_jobs() == 1


def test_a_job_that_fails_twice_runs_three_times(queue, start_worker, job_log):
    key = uuid.uuid4().hex
    enqueue(test_jobs.flaky, key=key)
    start_worker()
    wait_until(lambda: count(job_log, "flaky", key) >= 3, what="third run")
    assert key not in failed_jobs()
    assert count(job_log, "flaky", key) == 3


def test_a_job_that_always_fails_stops_and_is_kept_as_failed(
    queue, start_worker, job_log
):
    key = uuid.uuid4().hex
    enqueue(test_jobs.always_fails, key=key)
    start_worker()
    wait_until(lambda: count(job_log, "fails", key) == 3, what="the third run")
    wait_until(lambda: key in failed_jobs(), what="the failure record")
    assert count(job_log, "fails", key) == 3


def test_sigterm_lets_the_job_in_flight_finish(queue, start_worker, job_log):
    key = uuid.uuid4().hex
    enqueue(test_jobs.slow, key=key, seconds=2)
    worker = start_worker()
    wait_until(lambda: count(job_log, "start", key), what="the job to start")
    assert stop(worker, signal.SIGTERM) == 0, worker.log.read_text()
    assert count(job_log, "done", key) == 1


{% if cookiecutter.database == "postgres" %}
def test_a_job_whose_worker_was_killed_runs_again(queue, start_worker, job_log):
    key = uuid.uuid4().hex
    enqueue(test_jobs.slow, key=key, seconds=1)
    worker = start_worker()
    wait_until(lambda: count(job_log, "start", key), what="the job to start")
    stop(worker, signal.SIGKILL)
    assert count(job_log, "done", key) == 0
    # The new worker finds the dead worker's heartbeat stale and retries its job.
    start_worker()
    wait_until(lambda: count(job_log, "done", key), what="the retry")
    assert count(job_log, "start", key) == 2


def test_two_workers_never_run_a_job_twice(queue, start_worker, job_log):
    keys = [f"job-{n}" for n in range(40)]
    for key in keys:
        enqueue(test_jobs.mark, key=key)
    start_worker(JOBS_CONCURRENCY="3")
    start_worker(JOBS_CONCURRENCY="3")
    wait_until(lambda: len(lines(job_log)) >= len(keys), what="every job")
    wait_until(lambda: queued_jobs() == 0, what="an empty queue")
    assert sorted(lines(job_log)) == sorted(f"mark {key}" for key in keys)
{% else %}
def test_a_killed_worker_loses_only_the_job_in_flight(queue, start_worker, job_log):
    # huey removes a job from the queue when it starts it: a job running
    # when the worker is killed is lost (the nightly backfill repairs a lost
    # count_words). Jobs still waiting in the queue are kept.
    slow_key, waiting_key = uuid.uuid4().hex, uuid.uuid4().hex
    enqueue(test_jobs.slow, key=slow_key, seconds=30)
    enqueue(test_jobs.mark, key=waiting_key)
    worker = start_worker(JOBS_CONCURRENCY="1")
    wait_until(lambda: count(job_log, "start", slow_key), what="the job to start")
    stop(worker, signal.SIGKILL)
    assert count(job_log, "mark", waiting_key) == 0
    start_worker(JOBS_CONCURRENCY="1")
    wait_until(lambda: count(job_log, "mark", waiting_key), what="the waiting job")


def test_sigterm_puts_back_a_job_that_outlasts_the_timeout(
    queue, start_worker, job_log
):
    key = uuid.uuid4().hex
    enqueue(test_jobs.slow, key=key, seconds=8)
    worker = start_worker(JOBS_SHUTDOWN_TIMEOUT="1")
    wait_until(lambda: count(job_log, "start", key), what="the job to start")
    assert stop(worker, signal.SIGTERM) == 0, worker.log.read_text()
    assert count(job_log, "done", key) == 0
    start_worker()
    wait_until(lambda: count(job_log, "done", key), what="the job to run again")
    assert count(job_log, "start", key) == 2
{% endif %}


def test_the_periodic_backfill_counts_notes_left_without_a_count(
    queue, client, start_worker
):
    # Created without a job, as if its enqueue had been lost.
    note = Note.objects.create(title="Lost", body="one two three")
{% if cookiecutter.database == "postgres" %}
    every_second = "* * * * * *"
{% else %}
    # huey's schedule has one-minute steps; it checks once when it starts.
    every_second = "* * * * *"
{% endif %}
    start_worker(JOBS_BACKFILL_CRON=every_second)
    assert wait_until(lambda: word_count(client, note.pk) == 3, what="the backfill")
