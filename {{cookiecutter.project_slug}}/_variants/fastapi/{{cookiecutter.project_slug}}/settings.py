"""Settings from the environment, then `.env` (the environment wins).

Every setting is documented in `.env.example`.
https://docs.pydantic.dev/latest/concepts/pydantic_settings/
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = {"", "change-me"}
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ROOT / ".env", extra="ignore")

    app_env: Literal["development", "production"] = "production"
    secret_key: str = ""
    debug: bool = False
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1"]
    database_url: str = "sqlite:///db.sqlite3"
    db_statement_timeout_ms: int = 30_000
    db_pool_size: int = 4
    static_root: Path = Path("staticfiles")
    # Background jobs (jobs.py, bin/worker).
    jobs_max_attempts: int = Field(default=5, ge=2)
    jobs_retry_backoff: int = Field(default=2, ge=0)
    jobs_backfill_cron: str = "0 3 * * *"
    jobs_import_paths: Annotated[list[str], NoDecode] = []
    jobs_concurrency: int = Field(default=2, ge=1)
    jobs_shutdown_timeout: float = 30.0
    jobs_poll_interval: float = 5.0
{% if cookiecutter.database == "postgres" %}
    jobs_recover_cron: str = "* * * * *"
    jobs_heartbeat_interval: float = 10.0
    jobs_stalled_after: float = 60.0
{% endif %}

    @field_validator("allowed_hosts", "jobs_import_paths", mode="before")
    @classmethod
    def split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @model_validator(mode="after")
    def refuse_unsafe_production(self) -> "Settings":
        if self.app_env != "production":
            return self
        if self.secret_key in PLACEHOLDERS or len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                "SECRET_KEY is missing, a placeholder or shorter than "
                f"{MIN_SECRET_LENGTH} characters (APP_ENV=production)"
            )
        if self.debug:
            raise ValueError("DEBUG must be off when APP_ENV=production")
        return self

    @property
    def static_dir(self) -> Path:
        return ROOT / self.static_root  # an absolute STATIC_ROOT stays as it is


class ConfigurationError(SystemExit):
    """Stops the process with one line that says what to fix."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )
        raise ConfigurationError(f"configuration error: {problems}") from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
