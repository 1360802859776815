{% if cookiecutter.database == "postgres" %}
"""List the jobs that ran out of attempts: python -m {{ cookiecutter.project_slug }}.failed_jobs

They stay in procrastinate's table; retry one with
`python -m procrastinate --app={{ cookiecutter.project_slug }}.jobs.app shell` (`retry <id>`).
"""

import json

from .jobs import app


def failed_jobs() -> list[dict]:
    with app.open():
        found = app.job_manager.list_jobs(status="failed")
    return [
        {"id": job.id, "task": job.task_name, "kwargs": job.task_kwargs}
        for job in found
    ]
{% else %}
"""List the jobs that ran out of attempts: python -m {{ cookiecutter.project_slug }}.failed_jobs

huey keeps a record of each in its key-value table (jobs.py records them).
"""

import json

from .jobs import FAILED, huey


def failed_jobs() -> list[dict]:
    records = huey.storage.result_items()
    return [
        {"id": key.removeprefix(FAILED), **huey.serializer.deserialize(value)}
        for key, value in sorted(records.items())
        if key.startswith(FAILED)
    ]
{% endif %}


if __name__ == "__main__":
    for job in failed_jobs():
        print(json.dumps(job, default=str))
