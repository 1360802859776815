"""In production the app refuses to start with an unsafe configuration."""

import os
import subprocess
import sys

import pytest

from {{ cookiecutter.project_slug }}.settings import (
    ROOT,
    ConfigurationError,
    Settings,
    load_settings,
)

GOOD_SECRET = "x" * 48
PLACEHOLDER = "change-me"


@pytest.mark.parametrize(
    ("secret", "debug"),
    [("", False), (PLACEHOLDER, False), ("too-short", False), (GOOD_SECRET, True)],
    ids=["missing", "placeholder", "short", "debug-on"],
)
def test_production_refuses_unsafe_settings(secret, debug):
    with pytest.raises(ConfigurationError) as error:
        load_settings(app_env="production", secret_key=secret, debug=debug)
    message = str(error.value)
    assert "\n" not in message
    assert ("DEBUG" if debug else "SECRET_KEY") in message


def test_production_accepts_a_real_secret():
    settings = load_settings(app_env="production", secret_key=GOOD_SECRET, debug=False)
    assert settings.app_env == "production"


def test_development_allows_a_placeholder():
    assert load_settings(app_env="development", secret_key=PLACEHOLDER, debug=True)


def test_the_environment_wins_over_dotenv(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "a.example.com, b.example.com")
    assert Settings().allowed_hosts == ["a.example.com", "b.example.com"]


def test_the_app_does_not_start_with_a_placeholder_secret():
    env = dict(os.environ, APP_ENV="production", SECRET_KEY=PLACEHOLDER, DEBUG="false")
    result = subprocess.run(
        [sys.executable, "-c", "import {{ cookiecutter.project_slug }}.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "SECRET_KEY" in result.stderr
