"""The WSGI entrypoint gunicorn loads (gunicorn.conf.py: wsgi_app)."""

import sys

from . import create_app
from .settings import ImproperlyConfigured

# gunicorn stops, instead of restarting workers forever, when a worker exits
# with this code ("Worker failed to boot").
BOOT_ERROR = 3

try:
    app = create_app()
except ImproperlyConfigured as exc:
    # One clear line in the journal instead of a traceback.
    print(f"{{ cookiecutter.project_slug }}: {exc}", file=sys.stderr)
    raise SystemExit(BOOT_ERROR) from None
