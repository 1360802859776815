"""The worker process (bin/worker): runs queued jobs and the periodic ones.

Stops gracefully on SIGTERM (systemd, docker stop) or SIGINT: takes no new
job, lets the running one finish for up to JOBS_SHUTDOWN_TIMEOUT seconds,
and exits 0.
"""

{% if cookiecutter.database == "postgres" %}
import asyncio
{% endif %}
import logging
import os
import sys

from .settings import ImproperlyConfigured

try:
    from . import jobs
    from .queue import import_extra_modules, queue, settings

    settings.check()
except ImproperlyConfigured as exc:
    # One clear line in the journal instead of a traceback.
    print(f"{{ cookiecutter.project_slug }}: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

logger = logging.getLogger("{{ cookiecutter.project_slug }}.worker")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setting(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


CONCURRENCY = int(setting("JOBS_CONCURRENCY", 2))
POLL_INTERVAL = setting("JOBS_POLL_INTERVAL", 5)
SHUTDOWN_TIMEOUT = setting("JOBS_SHUTDOWN_TIMEOUT", 30)
{% if cookiecutter.database == "postgres" %}
# A worker that misses heartbeats for STALLED_AFTER seconds is taken for dead:
# its running jobs are queued again.
HEARTBEAT_INTERVAL = setting("JOBS_HEARTBEAT_INTERVAL", 10)
STALLED_AFTER = setting("JOBS_STALLED_AFTER", 60)


async def retry_stalled_jobs() -> None:
    # https://procrastinate.readthedocs.io/en/stable/howto/production/retry_stalled_jobs.html
    while True:
        stalled = await queue.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=STALLED_AFTER
        )
        for job in stalled:
            logger.warning("job %s (%s) was stalled; run again", job.id, job.task_name)
            await queue.job_manager.retry_job(job)
        await asyncio.sleep(HEARTBEAT_INTERVAL)


async def run() -> None:
    async with queue.open_async():
        recovery = asyncio.create_task(retry_stalled_jobs())
        try:
            await queue.run_worker_async(
                concurrency=CONCURRENCY,
                fetch_job_polling_interval=POLL_INTERVAL,
                shutdown_graceful_timeout=SHUTDOWN_TIMEOUT,
                update_heartbeat_interval=HEARTBEAT_INTERVAL,
                stalled_worker_timeout=STALLED_AFTER,
            )
        finally:
            recovery.cancel()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    import_extra_modules()
    logger.info("worker started with jobs from %s", jobs.__name__)
    asyncio.run(run())
{% else %}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    import_extra_modules()
    logger.info("worker started with jobs from %s", jobs.__name__)
    consumer = queue.create_consumer(
        workers=CONCURRENCY,
        worker_type="thread",
        periodic=True,
        max_delay=POLL_INTERVAL,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        # huey stops gracefully on SIGINT by default; systemd and docker send TERM.
        graceful_signal="TERM",
    )
    consumer.run()
{% endif %}


if __name__ == "__main__":
    main()
