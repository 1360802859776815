from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class ProjectConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}"
    verbose_name = "My App"

    def ready(self):
        # Register the jobs in every process: web (to enqueue) and bin/worker.
        for module in ["{{ cookiecutter.project_slug }}.jobs", *settings.JOBS_IMPORT_PATHS]:
            import_module(module)
