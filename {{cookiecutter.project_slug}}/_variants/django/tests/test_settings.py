"""Settings: the production guard, allowed hosts, HTTPS behind nginx."""

import re
import secrets
import subprocess
import sys
from urllib.parse import urlencode

import pytest
from conftest import ROOT, fetch, process_env

GOOD_KEY = secrets.token_urlsafe(48)
PASSWORD = secrets.token_urlsafe(16)


def manage_check(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=process_env(**env),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("key", "debug", "words"),
    [
        ("", "false", "SECRET_KEY"),
        ("change-me", "false", "SECRET_KEY"),
        ("change-me-" + GOOD_KEY, "false", "SECRET_KEY"),
        ("x" * 31, "false", "SECRET_KEY"),
        (GOOD_KEY, "true", "DEBUG"),
    ],
    ids=["empty", "placeholder", "placeholder-inside", "short", "debug"],
)
def test_production_refuses_unsafe_settings(key, debug, words):
    result = manage_check(APP_ENV="production", SECRET_KEY=key, DEBUG=debug)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]


def test_production_starts_with_safe_settings():
    result = manage_check(APP_ENV="production", SECRET_KEY=GOOD_KEY, DEBUG="false")
    assert result.returncode == 0, result.stderr


def test_unknown_app_env_is_refused():
    result = manage_check(APP_ENV="staging")
    assert result.returncode != 0
    assert "APP_ENV" in result.stderr


@pytest.mark.django_db
def test_unknown_host_is_refused(client):
    response = client.get("/healthz", HTTP_HOST="evil.example.net")
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.django_db(transaction=True)
def test_admin_login_over_https_behind_nginx(start_web, django_user_model):
    django_user_model.objects.create_superuser("admin", "a@example.com", PASSWORD)
    base = start_web(
        APP_ENV="production",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="shop.example.org",
    )
    # What nginx sends for https://shop.example.org/admin/login/
    proxy = {
        "Host": "shop.example.org",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.7",
    }
    status, headers, page = fetch(base, "GET", "/admin/login/", proxy)
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert "Secure" in cookie
    csrf_cookie = re.search(r"csrftoken=([^;]+)", cookie).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    form = urlencode(
        {
            "csrfmiddlewaretoken": token,
            "username": "admin",
            "password": PASSWORD,
            "next": "/admin/",
        }
    )
    status, headers, _ = fetch(
        base,
        "POST",
        "/admin/login/",
        {
            **proxy,
            "Cookie": f"csrftoken={csrf_cookie}",
            "Origin": "https://shop.example.org",
            "Referer": "https://shop.example.org/admin/login/",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        form,
    )
    assert status == 302
    assert headers["Location"] == "/admin/"
    session = [c for c in headers.get_all("Set-Cookie") if c.startswith("sessionid=")]
    assert session
    assert "Secure" in session[0]
