#!/usr/bin/env python
"""Django's command-line utility: migrate, createsuperuser, runserver, shell..."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad setting is one line for the operator, not a traceback.
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
