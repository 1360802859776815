"""Tier 4: each framework x database behind the generated nginx site, over real TLS.

For each app: bake (deploy=systemd), settings as bootstrap.sh writes them on a
server (.env.example with production values and fresh secrets), `bin/release`,
then `bin/web` started exactly as the unit's ExecStart names it, and nginx with
the generated site (test_nginx.site_config: loopback ports, paths under a temp
dir, a self-signed certificate). Requests go to 127.0.0.1 with SNI and Host set
to the site's domain; redirects are never followed (they name the real domain).
"""

import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from napkin_testing import (
    APPS,
    bake,
    combo_id,
    free_port,
    need,
    project_env,
    project_venv,
    wait_for_port,
)
from test_nginx import site_config

pytestmark = pytest.mark.slow

DOMAIN = "example.com"
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}


@dataclass
class Site:
    framework: str
    database: str
    project: Path
    env: dict
    http: int
    https: int
    cafile: Path
    static_dir: Path
    acme_dir: Path

    def client(self, **kwargs) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.cafile))
        return httpx.Client(verify=context, timeout=30, **kwargs)

    def get(self, path, *, host=DOMAIN, **kwargs):
        with self.client() as client:
            return client.get(
                f"https://127.0.0.1:{self.https}{path}",
                headers={"Host": host, **kwargs.pop("headers", {})},
                extensions={"sni_hostname": DOMAIN},
                **kwargs,
            )


def production_env(project: Path, database_url: str) -> dict[str, str]:
    """The settings bootstrap.sh writes to /etc/<slug>/env, from .env.example."""
    env = {}
    for line in (project / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if not sep or key.startswith("#"):
            continue
        if "change-me" in value:
            value = secrets.token_urlsafe(48)
        env[key] = value
    env.update(
        APP_ENV="production",
        DEBUG="false",
        ALLOWED_HOSTS=DOMAIN,
        DATABASE_URL=database_url,
    )
    return env


def exec_start(project: Path, process: str) -> list[str]:
    """The unit's ExecStart, with the server's release path moved to `project`."""
    unit = project / "deploy" / "systemd" / f"{project.name}-{process}.service"
    line = re.search(r"^ExecStart=(.+)$", unit.read_text(), flags=re.MULTILINE)
    command = line.group(1).replace(f"/srv/{project.name}/current/", f"{project}/")
    return command.split()


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def app_params(apps):
    """One xdist group per app: its tests share one nginx and one bin/web."""
    return [
        pytest.param(
            app, id=combo_id(app), marks=pytest.mark.xdist_group(f"e2e-{combo_id(app)}")
        )
        for app in apps
    ]


@pytest.fixture(scope="module", params=app_params(APPS))
def site(request, tmp_path_factory):
    framework, database = request.param
    need("nginx", "openssl")
    base = tmp_path_factory.mktemp(f"e2e-{combo_id(request.param)}")
    project = bake(base / "out", framework, database, "systemd", domain_name=DOMAIN)
    venv = project_venv(project)
    if database == "postgres":
        server = request.getfixturevalue("postgres")
        url = server.create_database(f"e2e_{framework}")
    else:
        url = f"sqlite:///{base / 'db.sqlite3'}"
    app_port, http, https = free_port(), free_port(), free_port()
    static_dir = base / "static"
    settings = production_env(project, url)
    settings.update(
        UV_NO_SYNC="1",
        HOST="127.0.0.1",
        PORT=str(app_port),
        WEB_CONCURRENCY="2",
        STATIC_ROOT=str(static_dir),
    )
    env = project_env(project, venv, **settings)
    release = subprocess.run(
        [project / "bin" / "release"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert release.returncode == 0, release.stderr[:3000] + release.stderr[-3000:]
    if framework == "django":
        admin = subprocess.run(
            [
                venv / "bin" / "python",
                "manage.py",
                "createsuperuser",
                "--noinput",
                "--username",
                "admin",
                "--email",
                "admin@example.com",
            ],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
            env={**env, "DJANGO_SUPERUSER_PASSWORD": "correct horse battery"},
        )
        assert admin.returncode == 0, admin.stderr

    prefix = base / "nginx"
    prefix.mkdir()
    conf = site_config(
        project,
        prefix,
        http_port=http,
        https_port=https,
        app_port=app_port,
        static_dir=static_dir,
        domain=DOMAIN,
    )
    processes = []
    web_log = open(base / "web.log", "w+")  # noqa: SIM115 -- closed in finally
    try:
        processes.append(
            subprocess.Popen(
                exec_start(project, "web"),
                cwd="/",
                env=env,
                stdout=web_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        processes.append(
            subprocess.Popen(
                ["nginx", "-c", conf, "-p", prefix, "-e", prefix / "error.log"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        for port in (app_port, https, http):
            wait_for_port(port)
        site = Site(
            framework,
            database,
            project,
            env,
            http,
            https,
            cafile=prefix / "letsencrypt" / "live" / DOMAIN / "fullchain.pem",
            static_dir=static_dir,
            acme_dir=prefix / "acme",
        )
        # Ready when /healthz answers through nginx, as deploy.sh waits for it.
        wait_until_ready(site, processes[0], base / "web.log")
        yield site
    finally:
        # nginx stops on QUIT after its requests; gunicorn on TERM.
        for process, sig in zip(processes, (signal.SIGTERM, signal.SIGQUIT)):
            stop(process, sig)
        web_log.seek(0)
        log = web_log.read()
        web_log.close()
        if processes and processes[0].returncode not in (0, -signal.SIGTERM):
            print(log[-5000:])


def wait_until_ready(site: Site, web: subprocess.Popen, log: Path, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None:
        try:
            if site.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"/healthz never answered 200 through nginx:\n{log.read_text()[-5000:]}"
    )


def assert_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        # Exactly once: the app's own copies are hidden by the site.
        assert response.headers.get_list(name) == [value], (name, response.headers)
    assert response.headers["server"] == "nginx"


def test_http_redirects_to_https(site):
    with httpx.Client() as client:
        response = client.get(
            f"http://127.0.0.1:{site.http}/api/notes?page=2", headers={"Host": DOMAIN}
        )
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{DOMAIN}/api/notes?page=2"


def test_http_serves_the_acme_challenge(site):
    challenge = site.acme_dir / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    (challenge / "token123").write_text("token123.thumbprint")
    with httpx.Client() as client:
        response = client.get(
            f"http://127.0.0.1:{site.http}/.well-known/acme-challenge/token123",
            headers={"Host": DOMAIN},
        )
    assert response.status_code == 200
    assert response.text == "token123.thumbprint"


def test_healthz_over_https(site):
    response = site.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"
    assert_security_headers(response)


def test_https_negotiates_http2_and_modern_tls(site):
    context = ssl.create_default_context(cafile=str(site.cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", site.https)) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_static_file_is_served_by_nginx_with_headers(site):
    css = site.get("/static/site.css")
    assert css.status_code == 200
    assert css.content == (site.static_dir / "site.css").read_bytes()
    assert "text/css" in css.headers["content-type"]
    assert css.headers["cache-control"] == "max-age=2592000"
    assert_security_headers(css)
    # A file only on disk, unknown to the app: nginx serves it itself.
    (site.static_dir / "probe.txt").write_text("from disk")
    probe = site.get("/static/probe.txt")
    assert probe.status_code == 200
    assert probe.text == "from disk"


def test_errors_carry_the_security_headers_too(site):
    response = site.get("/no/such/page")
    assert response.status_code == 404
    assert_security_headers(response)
    missing = site.get("/static/no-such-file.css")
    assert missing.status_code == 404
    assert_security_headers(missing)


def test_post_through_the_proxy_and_app_sees_https(site):
    with site.client() as client:
        created = client.post(
            f"https://127.0.0.1:{site.https}/api/notes",
            json={"title": "through nginx", "body": "one two three"},
            headers={"Host": DOMAIN},
            extensions={"sni_hostname": DOMAIN},
        )
    assert created.status_code == 201, created.text
    assert_security_headers(created)
    if "location" in created.headers:
        # An absolute URL built by the app names https and the public host.
        location = created.headers["location"]
        assert location.startswith(("/", f"https://{DOMAIN}/")), location
    note = site.get(f"/api/notes/{created.json()['id']}")
    assert note.status_code == 200
    assert note.json()["title"] == "through nginx"


@pytest.mark.parametrize(
    "site", app_params([app for app in APPS if app[0] == "django"]), indirect=True
)
def test_django_admin_login_passes_csrf_over_https(site):
    url = f"https://127.0.0.1:{site.https}/admin/login/"
    sni = {"sni_hostname": DOMAIN}
    with site.client(headers={"Host": DOMAIN}) as client:
        form = client.get(url, params={"next": "/admin/"}, extensions=sni)
        # No redirect loop: the app knows the request came over HTTPS.
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:2000]
        login = client.post(
            url,
            params={"next": "/admin/"},
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": "admin",
                "password": "correct horse battery",
                "next": "/admin/",
            },
            headers={
                "Origin": f"https://{DOMAIN}",
                "Referer": f"https://{DOMAIN}/admin/login/",
            },
            extensions=sni,
        )
        assert login.status_code == 302, login.text[:2000]
        assert login.headers["location"] == "/admin/"
        assert "sessionid" in client.cookies
        home = client.get(f"https://127.0.0.1:{site.https}/admin/", extensions=sni)
        assert home.status_code == 200
        assert_security_headers(home)


def test_unknown_host_is_refused(site):
    # Another name in SNI: no TLS handshake at all.
    context = ssl.create_default_context(cafile=str(site.cafile))
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", site.https)) as raw,
        context.wrap_socket(raw, server_hostname="evil.example"),
    ):
        pass
    # The right SNI but another Host: the connection closes without an answer.
    with pytest.raises(httpx.RemoteProtocolError):
        site.get("/healthz", host="evil.example")
    # Plain HTTP for another name: no answer either.
    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(f"http://127.0.0.1:{site.http}/", headers={"Host": "evil.example"})
