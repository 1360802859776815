"""Tier 2: the nginx site of every combination passes `nginx -t` and gixy.

nginx -t loads the certificates, so a self-signed pair stands in for certbot's
files; the site's absolute paths are moved under a temp dir (`site_config`).
test_e2e_nginx.py runs the same rendering for real.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from napkin_testing import COMBOS, bake, combo_id, need, self_signed_pair

# Installed with the test virtualenv (requirements-test.txt, gixy-ng).
GIXY = Path(sys.executable).parent / "gixy"


def site_config(
    project: Path,
    prefix: Path,
    *,
    http_port: int = 80,
    https_port: int = 443,
    app_port: int = 8000,
    static_dir: Path | None = None,
    domain: str = "example.com",
) -> Path:
    """The generated site, runnable by an unprivileged nginx under `prefix`.

    The only changes: listen on loopback ports (IPv6 listens dropped), the
    upstream on 127.0.0.1:app_port, certbot's and the static files' paths under
    `prefix`. Returns the main config file for `nginx -c ... -p prefix`.
    """
    slug = project.name
    site = (project / "deploy" / "nginx" / f"{slug}.conf").read_text()
    cert_dir = prefix / "letsencrypt" / "live" / domain
    if not (cert_dir / "fullchain.pem").exists():
        self_signed_pair(cert_dir, domain)
    static_dir = static_dir or prefix / "static"
    static_dir.mkdir(parents=True, exist_ok=True)
    (prefix / "acme").mkdir(exist_ok=True)
    site = re.sub(r"^\s*listen \[::\].*\n", "", site, flags=re.MULTILINE)
    site = re.sub(r"listen 80\b", f"listen 127.0.0.1:{http_port}", site)
    site = re.sub(r"listen 443\b", f"listen 127.0.0.1:{https_port}", site)
    site = re.sub(
        r"server (127\.0\.0\.1|web):8000\b", f"server 127.0.0.1:{app_port}", site
    )
    site = site.replace("/etc/letsencrypt/", f"{prefix}/letsencrypt/")
    site = site.replace("/var/www/certbot", f"{prefix}/acme")
    site = re.sub(rf"/srv/{slug}/(current/staticfiles|static)/", f"{static_dir}/", site)
    (prefix / "site.conf").write_text(site)
    main = prefix / "nginx.conf"
    main.write_text(
        f"""daemon off;
# The tests run as root; workers read files in the tests' private temp dirs.
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{}}
http {{
    include /etc/nginx/mime.types;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""
    )
    return main


def site_file(project: Path) -> Path:
    return project / "deploy" / "nginx" / f"{project.name}.conf"


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_nginx_accepts_the_site(baked, combo, tmp_path):
    need("nginx")
    conf = site_config(baked(combo), tmp_path)
    result = subprocess.run(
        ["nginx", "-t", "-c", conf, "-p", tmp_path, "-e", tmp_path / "error.log"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # A warning (a deprecated or ignored directive) is a finding too.
    assert "[warn]" not in result.stderr, result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_gixy_finds_nothing(baked, combo):
    if not GIXY.exists():
        pytest.fail("gixy is missing from the test virtualenv (requirements-test.txt)")
    result = subprocess.run(
        [GIXY, site_file(baked(combo))], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout, result.stdout


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_site_names_the_domain_and_upstream(baked, combo):
    deploy = combo[2]
    text = site_file(baked(combo)).read_text()
    assert "server_name example.com;" in text
    assert "/etc/letsencrypt/live/example.com/fullchain.pem" in text
    upstream = "web:8000" if deploy == "compose" else "127.0.0.1:8000"
    assert re.search(rf"server {re.escape(upstream)}[ ;]", text)


def test_site_uses_the_answered_domain(tmp_path):
    project = bake(tmp_path, domain_name="shop.example.org")
    text = site_file(project).read_text()
    assert "server_name shop.example.org;" in text
    assert "return 301 https://shop.example.org$request_uri;" in text
    assert "/etc/letsencrypt/live/shop.example.org/privkey.pem" in text
