"""Settings from the environment, then `.env` beside the project (the environment wins).

Every setting is documented in `.env.example`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRETS = {"", "change-me"}
MIN_SECRET_LENGTH = 32
TRUE = {"1", "true", "yes", "on"}
FALSE = {"", "0", "false", "no", "off"}
IN_MEMORY = {None, "", ":memory:"}


class ImproperlyConfigured(RuntimeError):
    """A setting is missing or unsafe; the message names it."""


def _bool(env: Mapping[str, str], name: str, default: str) -> bool:
    value = env.get(name, default).strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a whole number, not {value!r}"
        ) from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def database_uri(url: str) -> str:
    """DATABASE_URL as SQLAlchemy wants it: psycopg 3, SQLite paths from the root."""
    if not url:
        raise ImproperlyConfigured("DATABASE_URL is not set (see .env.example)")
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite" and parsed.database not in IN_MEMORY:
        # `sqlite:///db.sqlite3` is relative to the project root, whatever the
        # current directory (Flask-SQLAlchemy would use the instance folder).
        path = Path(parsed.database)
        if not path.is_absolute():
            parsed = parsed.set(database=str(PROJECT_ROOT / path))
    elif parsed.get_backend_name() not in {"postgresql", "sqlite"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgresql:// or sqlite:///, not {url!r}"
        )
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Settings:
    app_env: str
    secret_key: str
    debug: bool
    allowed_hosts: tuple[str, ...]
    database_url: str
    statement_timeout_ms: int
    pool_size: int
    static_root: Path
    revision: str
    backfill_cron: str = "0 3 * * *"
    jobs_import_paths: tuple[str, ...] = ()
    jobs_max_attempts: int = 5
    jobs_retry_backoff: float = 2.0

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        if env is None:
            env = {
                key: value
                for key, value in dotenv_values(PROJECT_ROOT / ".env").items()
                if value is not None
            }
            env.update(os.environ)
        app_env = env.get("APP_ENV", "production").strip().lower() or "production"
        if app_env not in {"development", "production"}:
            raise ImproperlyConfigured(
                f"APP_ENV must be development or production, not {app_env!r}"
            )
        hosts = tuple(host.strip() for host in env.get("ALLOWED_HOSTS", "").split(","))
        static_root = Path(env.get("STATIC_ROOT", "") or "staticfiles")
        revision_file = PROJECT_ROOT / "REVISION"
        revision = revision_file.read_text().strip() if revision_file.is_file() else ""
        return cls(
            app_env=app_env,
            secret_key=env.get("SECRET_KEY", ""),
            debug=_bool(env, "DEBUG", "false"),
            allowed_hosts=tuple(host for host in hosts if host),
            database_url=database_uri(env.get("DATABASE_URL", "").strip()),
            statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 30000),
            pool_size=_int(env, "DB_POOL_SIZE", 4),
            static_root=static_root
            if static_root.is_absolute()
            else PROJECT_ROOT / static_root,
            revision=revision or "dev",
            backfill_cron=env.get("JOBS_BACKFILL_CRON", "").strip() or "0 3 * * *",
            jobs_import_paths=tuple(
                name.strip()
                for name in env.get("JOBS_IMPORT_PATHS", "").split(",")
                if name.strip()
            ),
            jobs_max_attempts=_int(env, "JOBS_MAX_ATTEMPTS", 5),
            jobs_retry_backoff=_float(env, "JOBS_RETRY_BACKOFF", 2.0),
        )

    def check(self) -> None:
        """Refuse to run production with a weak secret or with DEBUG on."""
        if self.app_env != "production":
            return
        if self.secret_key.strip() in PLACEHOLDER_SECRETS:
            raise ImproperlyConfigured(
                "SECRET_KEY is missing or a placeholder; set a random value "
                "(APP_ENV=production)"
            )
        if len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ImproperlyConfigured(
                f"SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters "
                "(APP_ENV=production)"
            )
        if self.debug:
            raise ImproperlyConfigured("DEBUG must be off when APP_ENV=production")
