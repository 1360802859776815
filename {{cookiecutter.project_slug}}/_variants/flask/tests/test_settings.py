"""Settings come from the environment; production refuses unsafe ones."""

import subprocess
import sys

import pytest

from {{ cookiecutter.project_slug }}.settings import (
    PROJECT_ROOT,
    ImproperlyConfigured,
    Settings,
)

GOOD = {
    "APP_ENV": "production",
    "SECRET_KEY": "k" * 40,
    "DEBUG": "false",
    "ALLOWED_HOSTS": "example.com, www.example.com",
    "DATABASE_URL": "sqlite:///db.sqlite3",
}


def test_production_with_safe_settings_starts():
    settings = Settings.from_env(GOOD)
    settings.check()
    assert settings.allowed_hosts == ("example.com", "www.example.com")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"SECRET_KEY": "change-me"}, "SECRET_KEY"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DEBUG": "true"}, "DEBUG"),
    ],
)
def test_production_refuses_unsafe_settings(change, named):
    settings = Settings.from_env({**GOOD, **change})
    with pytest.raises(ImproperlyConfigured, match=named):
        settings.check()


def test_missing_secret_key_is_refused():
    env = {key: value for key, value in GOOD.items() if key != "SECRET_KEY"}
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        Settings.from_env(env).check()


def test_app_env_defaults_to_production():
    env = {key: value for key, value in GOOD.items() if key != "APP_ENV"}
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        Settings.from_env({**env, "SECRET_KEY": "change-me"}).check()


def test_development_allows_a_placeholder_secret():
    Settings.from_env({**GOOD, "APP_ENV": "development", "SECRET_KEY": ""}).check()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"DB_POOL_SIZE": "four"}, "DB_POOL_SIZE"),
    ],
)
def test_bad_values_are_named(change, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        Settings.from_env({**GOOD, **change})


def test_relative_sqlite_path_is_from_the_project_root():
    settings = Settings.from_env(GOOD)
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'db.sqlite3'}"


def test_postgres_url_uses_psycopg_3():
    url = "postgresql://app:pw@127.0.0.1:5432/app"
    settings = Settings.from_env({**GOOD, "DATABASE_URL": url})
    assert settings.database_url == "postgresql+psycopg://app:pw@127.0.0.1:5432/app"


# The web process (what gunicorn imports) and the worker.
PROCESSES = {
    "web": [sys.executable, "-c", "import {{ cookiecutter.project_slug }}.wsgi"],
    "worker": [sys.executable, "-m", "{{ cookiecutter.project_slug }}.worker"],
}


@pytest.mark.parametrize(
    ("change", "named"),
    [({"SECRET_KEY": "change-me"}, "SECRET_KEY"), ({"DEBUG": "maybe"}, "DEBUG")],
)
@pytest.mark.parametrize("process", PROCESSES)
def test_a_process_refuses_to_start_with_one_clear_line(
    test_env, process, change, named
):
    env = {**test_env, "APP_ENV": "production", **change}
    result = subprocess.run(  # noqa: S603 (our own modules)
        PROCESSES[process],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
