"""Shared helpers for the template's tests: baking, tools, virtualenvs, PostgreSQL.

Every test tier imports from here, so a combination is baked, a virtualenv is
built and a database server is started the same way everywhere.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter
from filelock import FileLock

TEMPLATE = Path(__file__).resolve().parent.parent
CI = bool(os.environ.get("CI"))
CACHE = Path(os.environ.get("NAPKIN_CACHE", Path.home() / ".cache" / "napkin"))

FRAMEWORKS = ("django", "fastapi", "flask")
DATABASES = ("postgres", "sqlite")
DEPLOYS = ("systemd", "compose")
COMBOS = list(itertools.product(FRAMEWORKS, DATABASES, DEPLOYS))
APPS = list(itertools.product(FRAMEWORKS, DATABASES))


def combo_id(combo) -> str:
    return "-".join(combo)


def missing(reason: str):
    """A system tool is absent: skip on a laptop, fail in CI (nothing skips there)."""
    if CI:
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed")


def bake(
    output_dir: Path,
    framework: str = "django",
    database: str = "postgres",
    deploy: str = "systemd",
    **answers: str,
) -> Path:
    """Generate a project with cookiecutter's API and return its directory."""
    context = {"framework": framework, "database": database, "deploy": deploy}
    context.update(answers)
    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=context,
            output_dir=str(output_dir),
        )
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def self_signed_pair(directory: Path, domain: str) -> tuple[Path, Path]:
    """A self-signed certificate and key for `domain`, in certbot's file names.

    P-256, certbot's default key type, valid for two days.
    """
    need("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={domain}",
            "-addext",
            f"subjectAltName=DNS:{domain}",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# --- virtualenvs shared across variants ------------------------------------


def _dependency_key(project: Path) -> str:
    """Projects whose dependency lists are equal share one virtualenv."""
    text = (project / "pyproject.toml").read_text()
    deps = re.findall(r'^\s+"([^"]+)",$', text, flags=re.MULTILINE)
    return hashlib.sha256("\n".join(sorted(deps)).encode()).hexdigest()[:16]


def project_venv(project: Path) -> Path:
    """A virtualenv with the project's pinned dependencies, built once and reused.

    `uv sync` installs from uv's cache; the venv lives outside the project so
    the twelve bakes of one framework and database share it.
    """
    need("uv")
    venv = CACHE / "venvs" / _dependency_key(project)
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock"):
        if not (venv / ".synced").exists():
            env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(venv))
            subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=env, check=True)
            (venv / ".synced").touch()
    return venv


def project_env(project: Path, venv: Path, **extra: str) -> dict[str, str]:
    """The environment a generated project's commands run with in the tests."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "VIRTUAL_ENV", "UV_", "DJANGO_"))
    }
    env.update(
        VIRTUAL_ENV=str(venv),
        UV_PROJECT_ENVIRONMENT=str(venv),
        PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
    )
    env.update(extra)
    return env


# --- PostgreSQL --------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on loopback, trust auth, superuser `postgres`."""

    port: int
    bindir: Path
    datadir: Path

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        return subprocess.run(
            [
                self.bindir / "psql",
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                self.url(dbname),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._as_owner(
            [self.bindir / "pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "stop"]
        )

    def start(self) -> None:
        sock = self.datadir.parent / "sock"
        options = (
            f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._as_owner(
            [
                self.bindir / "pg_ctl",
                "-D",
                self.datadir,
                "-o",
                options,
                "-l",
                self.datadir.parent / "log",
                "-w",
                "start",
            ]
        )

    def _as_owner(self, cmd) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        subprocess.run(
            [*prefix, *map(str, cmd)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def start_postgres() -> Postgres:
    bindir = _pg_bin()
    if bindir is None:
        missing("PostgreSQL server binaries (initdb) are not installed")
    base = Path(tempfile.mkdtemp(prefix="napkin-pg-"))
    (base / "sock").mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(base / "sock", "postgres")
    server = Postgres(port=free_port(), bindir=bindir, datadir=base / "data")
    server._as_owner(
        [
            bindir / "initdb",
            "-D",
            server.datadir,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]
    )
    server.start()
    return server
