"""`python manage.py failed_jobs`: the jobs that failed their last attempt."""

from django.core.management.base import BaseCommand
{% if cookiecutter.database == "postgres" %}
from procrastinate.contrib.django.models import ProcrastinateJob
{% else %}
from huey.contrib.djhuey import HUEY
from huey.utils import Error
{% endif %}


class Command(BaseCommand):
    help = "List the jobs that failed their last attempt, newest last."

    def handle(self, *args, **options):
{% if cookiecutter.database == "postgres" %}
        # Also in the Django admin: Procrastinate > Jobs, filtered by status.
        for job in ProcrastinateJob.objects.filter(status="failed").order_by("id"):
            self.stdout.write(
                f"{job.id} {job.task_name} {job.args} attempts={job.attempts}"
            )
{% else %}
        # huey keeps a job's final error in its result store (table kv).
        for key, raw in HUEY.all_results().items():
            result = HUEY.serializer.deserialize(raw)
            if isinstance(result, Error):
                self.stdout.write(f"{key} {result.metadata['error']}")
{% endif %}
