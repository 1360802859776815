"""gunicorn settings for bin/web, from the environment.

https://docs.gunicorn.org/en/stable/settings.html
"""

import os

{% if cookiecutter.framework == "django" %}
wsgi_app = "{{ cookiecutter.project_slug }}.wsgi:application"
{% elif cookiecutter.framework == "fastapi" %}
wsgi_app = "{{ cookiecutter.project_slug }}.main:app"
# FastAPI is an ASGI app: gunicorn manages uvicorn worker processes.
worker_class = "uvicorn_worker.UvicornWorker"
# Trust X-Forwarded-Proto/-For only from nginx on this host, so the app sees
# https and the client's address; uvicorn workers read this setting too.
# https://www.uvicorn.org/deployment/#proxies-and-forwarded-headers
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
{% elif cookiecutter.framework == "flask" %}
wsgi_app = "{{ cookiecutter.project_slug }}.wsgi:app"
{% endif %}

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
# Requests are logged by nginx; gunicorn logs errors to stderr (the journal).
accesslog = None
errorlog = "-"
# A worker stuck longer than this is killed and replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
