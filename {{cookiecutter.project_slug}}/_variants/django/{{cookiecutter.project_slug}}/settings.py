"""Settings for {{ cookiecutter.project_name }}, read from the environment.

The environment wins over `.env`; every variable is described in `.env.example`.
https://docs.djangoproject.com/en/5.2/ref/settings/
"""

import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    # Only fills in variables the environment does not already set.
    env.read_env(BASE_DIR / ".env")

APP_ENV = env.str("APP_ENV", default="production")
if APP_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(
        f"APP_ENV must be development or production, not {APP_ENV!r}"
    )
PRODUCTION = APP_ENV == "production"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if PRODUCTION and (len(SECRET_KEY) < 32 or "change-me" in SECRET_KEY):
    raise ImproperlyConfigured(
        "APP_ENV=production needs a SECRET_KEY of 32+ characters that is not a "
        "placeholder; make one with: "
        'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
    )
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("APP_ENV=production refuses to start with DEBUG on")
if not SECRET_KEY:
    # Development only: sessions last until the next restart.
    SECRET_KEY = secrets.token_urlsafe(48)

# Loopback names are always allowed so that health probes on the machine
# itself (curl http://127.0.0.1:8000/healthz) are answered.
ALLOWED_HOSTS = [
    *env.list("ALLOWED_HOSTS", default=[]),
    "localhost",
    "127.0.0.1",
    "[::1]",
]
# Admin forms are posted over HTTPS through nginx: Django checks the Origin
# header against these. https://docs.djangoproject.com/en/5.2/ref/csrf/
CSRF_TRUSTED_ORIGINS = [
    f"https://*{host}" if host.startswith(".") else f"https://{host}"
    for host in env.list("ALLOWED_HOSTS", default=[])
    if host != "*"
]

# nginx terminates TLS and says so in X-Forwarded-Proto; it also passes the
# original Host, so X-Forwarded-Host is not trusted.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False
# nginx redirects plain HTTP to HTTPS (and sends HSTS), so a probe over
# plain HTTP on loopback gets an answer instead of a redirect.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
{% if cookiecutter.database == "postgres" %}
    "procrastinate.contrib.django",
{% else %}
    "huey.contrib.djhuey",
{% endif %}
    "{{ cookiecutter.project_slug }}",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "{{ cookiecutter.project_slug }}.urls"
WSGI_APPLICATION = "{{ cookiecutter.project_slug }}.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db_url("DATABASE_URL", default="sqlite:///db.sqlite3")}
DATABASE = DATABASES["default"]
if DATABASE["ENGINE"] == "django.db.backends.sqlite3":
    DATABASE_PATH = Path(DATABASE["NAME"])
    if not DATABASE_PATH.is_absolute():
        DATABASE_PATH = BASE_DIR / DATABASE_PATH
    DATABASE["NAME"] = str(DATABASE_PATH)
    DATABASE["OPTIONS"] = {
        # BEGIN IMMEDIATE takes the write lock up front, so concurrent writers
        # queue on busy_timeout instead of failing with "database is locked".
        # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-transaction-behavior
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA busy_timeout=20000;"
            "PRAGMA foreign_keys=ON;"
        ),
    }
    # The tests use their own file beside the database, never the database.
    DATABASE["TEST"] = {
        "NAME": str(
            DATABASE_PATH.with_name(f"{DATABASE_PATH.stem}_test{DATABASE_PATH.suffix}")
        )
    }
else:
    # Django's backend with a health check that needs no round trip to the
    # server (postgres/base.py): a connection PostgreSQL ended (a restart) is
    # replaced before the request uses it.
    DATABASE["ENGINE"] = "{{ cookiecutter.project_slug }}.postgres"
    DATABASE["CONN_HEALTH_CHECKS"] = True
    statement_timeout = env.int("DB_STATEMENT_TIMEOUT_MS", default=30000)
    DATABASE["OPTIONS"] = {"options": f"-c statement_timeout={statement_timeout}"}

# Each gunicorn thread keeps its connection open across requests (opening one
# costs more than most requests): WEB_CONCURRENCY x WEB_THREADS at most.
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
DATABASE["CONN_MAX_AGE"] = 600

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / env.str("STATIC_ROOT", default="staticfiles")

# The API refuses bodies over 64 KiB itself (413); admin forms may be larger.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
NOTES_MAX_BODY_BYTES = 64 * 1024

# Errors and job logs go to stderr: the journal or `docker compose logs`.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "{{ cookiecutter.project_slug }}": {"level": "INFO"},
{% if cookiecutter.database == "postgres" %}
        # One line per job run.
        "procrastinate.worker": {
{% else %}
        # One line per job run; with a handler here, run_huey adds no second one.
        "huey": {
{% endif %}
            "handlers": ["stderr"],
            "level": "INFO",
            "propagate": False,
        },
    },
}

# Background jobs (jobs.py, bin/worker); .env.example describes each one.
JOBS_MAX_ATTEMPTS = env.int("JOBS_MAX_ATTEMPTS", default=5)
JOBS_RETRY_BACKOFF = env.int("JOBS_RETRY_BACKOFF", default=2)
JOBS_BACKFILL_CRON = env.str("JOBS_BACKFILL_CRON", default="0 3 * * *")
# Modules of jobs to register besides jobs.py (the tests add their own).
JOBS_IMPORT_PATHS = env.list("JOBS_IMPORT_PATHS", default=[])
{% if cookiecutter.database == "postgres" %}
# A worker writes a heartbeat this often; the jobs of a worker silent for
# JOBS_STALLED_AFTER seconds are run again (checked on JOBS_RECOVER_CRON).
# https://procrastinate.readthedocs.io/en/stable/howto/production/retry_stalled_jobs.html
JOBS_HEARTBEAT_INTERVAL = env.float("JOBS_HEARTBEAT_INTERVAL", default=10)
JOBS_STALLED_AFTER = env.float("JOBS_STALLED_AFTER", default=60)
JOBS_RECOVER_CRON = env.str("JOBS_RECOVER_CRON", default="* * * * *")
PROCRASTINATE_WORKER_DEFAULTS = {
    "concurrency": env.int("JOBS_CONCURRENCY", default=2),
    "update_heartbeat_interval": JOBS_HEARTBEAT_INTERVAL,
    "stalled_worker_timeout": JOBS_STALLED_AFTER,
    # Jobs are announced by LISTEN/NOTIFY; polling catches retries and delays.
    "fetch_job_polling_interval": env.float("JOBS_POLL_INTERVAL", default=5),
    # On SIGTERM, finish the jobs in flight for up to this long.
    "shutdown_graceful_timeout": env.float("JOBS_SHUTDOWN_TIMEOUT", default=30),
}
{% else %}
# huey keeps its queue in the app's own SQLite file (tables created by the
# migrations). https://huey.readthedocs.io/en/latest/django.html
HUEY = {
    "huey_class": "huey.SqliteHuey",
    "name": "{{ cookiecutter.project_slug }}",
    "filename": DATABASE["NAME"],
    "create_tables": False,
    "timeout": 20,
    "immediate": False,
    # Keep only a job's final error: `manage.py failed_jobs` lists those.
    "store_intermediate_errors": False,
    "consumer": {
        "workers": env.int("JOBS_CONCURRENCY", default=2),
        "worker_type": "thread",
        # Poll the queue at least this often when it is idle.
        "max_delay": env.float("JOBS_POLL_INTERVAL", default=5),
        # SIGTERM (systemd, docker stop) finishes the jobs in flight first.
        "graceful_signal": "TERM",
        "shutdown_timeout": env.float("JOBS_SHUTDOWN_TIMEOUT", default=30),
    },
}
{% endif %}
