"""WSGI entry point for gunicorn (bin/web): `{{ cookiecutter.project_slug }}.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")

application = get_wsgi_application()
