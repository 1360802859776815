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
# Measured choices (napkin's docs/performance.md, `make bench`): one worker
# process per core, at least two. Each worker serves several requests at once
{% if cookiecutter.framework == "fastapi" %}
# (its event loop, sync views in its threadpool), so a request waiting on the
{% else %}
# (threads, below), so a request waiting on the
{% endif %}
# database does not leave a core idle; more processes than cores only add
# memory and context switches.
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, os.cpu_count() or 1))
{% if cookiecutter.framework != "fastapi" %}
# gthread rather than the default sync worker: sync answers every request
# with `Connection: close`, so nginx would open a new upstream connection per
# request and its keep-alive pool (deploy/nginx/) would do nothing.
{% if cookiecutter.framework == "flask" %}
# Each thread may hold a database connection: keep DB_POOL_SIZE >= WEB_THREADS.
{% else %}
# Each thread keeps its own database connection (CONN_MAX_AGE).
{% endif %}
# https://docs.gunicorn.org/en/stable/design.html#how-many-threads
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS") or 4)
{% endif %}
# Idle connections from nginx stay open longer than nginx keeps them
# (upstream keepalive_timeout, 60 s), so nginx never reuses one the app has
# just closed, which fails a POST with a 502.
# https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive_timeout
keepalive = 75
# No control socket (gunicorn 25.1+, for `gunicornc`): deploys restart the
# service instead, and its default path in $HOME would be shared by every
# gunicorn this user runs.
control_socket_disable = True
# Requests are logged by nginx; gunicorn logs errors to stderr (the journal).
accesslog = None
errorlog = "-"
# A worker stuck longer than this is killed and replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
