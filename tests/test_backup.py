"""Tier 4: bin/backup and bin/restore against a real S3-compatible server.

moto's S3 server on loopback (with IAM checks on, so a wrong key is refused),
the real rclone and age, a real PostgreSQL cluster or SQLite file. Both
scripts are framework-independent (they read DATABASE_URL), so one framework
with each database runs them end to end.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest

from napkin_testing import (
    DATABASES,
    bake,
    combo_id,
    free_port,
    missing,
    need,
    project_env,
    project_venv,
    wait_for_port,
)

pytestmark = pytest.mark.slow

FRAMEWORK = "fastapi"
SLUG = "my_app"
BUCKET = "backups"
NEEDLE = "needle-7f3a9c"  # a title that must not appear in the uploaded object
KIND = {"postgres": "pgdump", "sqlite": "sqlite3"}
MIGRATIONS_TABLE = {"django": "django_migrations"}.get(FRAMEWORK, "alembic_version")

INSERT = (
    "INSERT INTO notes (title, body, word_count, created_at, updated_at) "
    "VALUES ({title}, {body}, {words}, {now}, {now})"
)


# --- the storage server and the key pair -----------------------------------------


@dataclass
class S3:
    endpoint: str
    key_id: str
    secret: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def names(self, prefix: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
        return sorted(
            o["Key"].removeprefix(prefix + "/") for o in listed.get("Contents", [])
        )


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server that checks keys: one IAM user may use S3, no one else."""
    need("rclone", "age", "age-keygen")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).parent / "moto_server"
    # Requests before authentication starts: exactly the three IAM calls below.
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "3", "PATH": "/usr/bin:/bin"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="backup")
        iam.put_user_policy(
            UserName="backup",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        storage = S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        storage.client().create_bucket(Bucket=BUCKET)
        yield storage
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The operator's age key pair, and a stranger's private key."""
    need("age-keygen")
    folder = tmp_path_factory.mktemp("keys")
    for name in ("operator", "stranger"):
        subprocess.run(
            ["age-keygen", "-o", folder / f"{name}.txt"],
            check=True,
            capture_output=True,
        )
    recipient = subprocess.run(
        ["age-keygen", "-y", folder / "operator.txt"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "identity": folder / "operator.txt",
        "stranger": folder / "stranger.txt",
        "recipient": recipient,
    }


@pytest.fixture
def dead_mans_switch():
    """An HTTP endpoint on loopback that counts the pings it gets."""
    pings = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            pings.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ping/backup", pings
    server.shutdown()
    server.server_close()


@pytest.fixture
def tiny_tmpdir(tmp_path):
    """A 16 KiB file system for bin/backup's temporary files: a full disk."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", mountpoint],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", mountpoint], check=True)


# --- the baked project and its database ---------------------------------------------


@pytest.fixture(scope="module", params=DATABASES)
def app(request, tmp_path_factory):
    database = request.param
    project = bake(tmp_path_factory.mktemp(f"backup-{database}"), FRAMEWORK, database)
    return database, project, project_venv(project)


class Database:
    """The app's database as the test sees it: SQL in, rows out."""

    def __init__(self, kind: str, url: str, postgres=None, name: str = ""):
        self.kind, self.server, self.name = kind, postgres, name
        if kind == "postgres":
            url = f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/{name}"
        self.url = url

    @property
    def path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    def sql(self, script: str) -> str:
        if self.kind == "postgres":
            return self.server.psql(script, self.name)
        with sqlite3.connect(self.path, timeout=30) as db:
            if script.lstrip().upper().startswith("SELECT"):
                return "\n".join("|".join(map(str, row)) for row in db.execute(script))
            db.executescript(script)
            return ""

    def rows(self) -> list[str]:
        """Every column of every note, in id order."""
        if self.kind == "postgres":
            return self.sql(
                "SELECT row_to_json(n)::text FROM notes n ORDER BY id"
            ).splitlines()
        with sqlite3.connect(self.path, timeout=30) as db:
            return [repr(row) for row in db.execute("SELECT * FROM notes ORDER BY id")]

    def insert(self, *notes: tuple[str, str, int | None]) -> None:
        """Notes as (title, body, word_count), in one round trip."""

        def lit(text):
            return "'" + text.replace("'", "''") + "'"

        now = "now()" if self.kind == "postgres" else "CURRENT_TIMESTAMP"
        self.sql(
            ";\n".join(
                INSERT.format(
                    title=lit(title),
                    body=lit(body),
                    words="NULL" if words is None else words,
                    now=now,
                )
                for title, body, words in notes
            )
        )

    def wipe(self) -> None:
        if self.kind == "postgres":
            self.server.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.server.psql(f'CREATE DATABASE "{self.name}" OWNER "{ROLE}"')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)


# As on the server (deploy/bootstrap.sh): the app's own role owns its database
# and is no superuser, and bin/backup and bin/restore run as that role.
ROLE = "backup_app"


@pytest.fixture(scope="module")
def migrated(app, request, tmp_path_factory):
    """The app's migrations (bin/release) applied once; each test gets a copy."""
    database, project, _ = app
    if database == "postgres":
        server = request.getfixturevalue("postgres")
        if not server.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"):
            server.psql(f'CREATE ROLE "{ROLE}" LOGIN')
        template = Database("postgres", "", server, "backup_migrated")
        template.wipe()
    else:
        path = tmp_path_factory.mktemp("migrated") / "app.sqlite3"
        template = Database("sqlite", f"sqlite:///{path}")
    run(project, env_for(app, template, None, None), "bin/release", check=True)
    return template


@pytest.fixture
def db(migrated, request, tmp_path):
    """A migrated database of this test's own, with DATABASE_URL pointing at it."""
    if migrated.kind == "postgres":
        name = re.sub(r"\W", "_", request.node.name.lower())[:60]
        migrated.server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        migrated.server.psql(
            f'CREATE DATABASE "{name}" TEMPLATE "{migrated.name}" OWNER "{ROLE}"'
        )
        return Database("postgres", "", migrated.server, name)
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(migrated.path) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return Database("sqlite", f"sqlite:///{path}")


def env_for(app, db: Database, s3: S3 | None, keys, **extra: str) -> dict[str, str]:
    """What a user's server has: DATABASE_URL, BACKUP_*, RCLONE_CONFIG_OFFSITE_*."""
    _, project, venv = app
    env = project_env(project, venv, DATABASE_URL=db.url)
    if s3 is not None:
        env.update(
            BACKUP_REMOTE=f"offsite:{BUCKET}/{db.name or db.path.parent.name}",
            BACKUP_AGE_RECIPIENT=keys["recipient"],
            BACKUP_RETENTION_DAYS="30",
            BACKUP_KEEP_LAST="7",
            RCLONE_CONFIG_OFFSITE_TYPE="s3",
            RCLONE_CONFIG_OFFSITE_PROVIDER="Other",
            RCLONE_CONFIG_OFFSITE_ENDPOINT=s3.endpoint,
            RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID=s3.key_id,
            RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY=s3.secret,
            # Set on many servers; rclone 1.60 fails with it unless the script unsets it.
            AWS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
        )
    env.update(extra)
    return env


def run(project: Path, env: dict, *cmd: str, check: bool = False, stdin=None):
    result = subprocess.run(
        [str(project / cmd[0]), *cmd[1:]],
        cwd=project,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def prefix_of(env: dict) -> str:
    return env["BACKUP_REMOTE"].split(":", 1)[1].split("/", 1)[1]


def good_backups(names: list[str], database: str) -> list[str]:
    pattern = rf"{SLUG}-\d{{8}}T\d{{6}}Z\.{KIND[database]}\.age"
    return [name for name in names if re.fullmatch(pattern, name)]


def seed(db: Database, count: int = 150) -> None:
    db.insert(
        (NEEDLE, "the body\nwith a newline, a tab\tand 'quotes' ✓", 9),
        *((f"note {i}", "word " * (i % 7), None if i % 3 else i) for i in range(count)),
    )


class Writer(threading.Thread):
    """Keeps creating notes, one request at a time, like the app under load."""

    def __init__(self, write):
        super().__init__(daemon=True)
        self.write, self.stop, self.written, self.error = (
            write,
            threading.Event(),
            0,
            None,
        )

    def run(self):
        try:
            while not self.stop.is_set():
                self.write(f"written during the backup {self.written}")
                self.written += 1
        except Exception as exc:  # noqa: BLE001 -- the test reports it, not the thread
            self.error = exc


@contextmanager
def web(project: Path, env: dict, log: Path):
    """The app through bin/web on a free port, as a user runs it; stopped after."""
    port = free_port()
    env = dict(env, PORT=str(port), WEB_CONCURRENCY="1")
    with log.open("a") as out:
        server = subprocess.Popen(
            [project / "bin" / "web"], cwd=project, env=env, stdout=out, stderr=out
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            yield client
    finally:
        server.terminate()
        server.wait(timeout=60)


def create_note(client: httpx.Client, title: str, body: str = "") -> None:
    response = client.post("/api/notes", json={"title": title, "body": body})
    assert response.status_code == 201, response.text


def all_notes(client: httpx.Client) -> list[dict]:
    """Every note the API serves, in id order."""
    notes, page = [], 1
    while True:
        response = client.get("/api/notes", params={"page": page, "per_page": 100})
        assert response.status_code == 200, response.text
        notes += response.json()["items"]
        if len(notes) >= response.json()["total"]:
            return sorted(notes, key=lambda note: note["id"])
        page += 1


# --- the tests ---------------------------------------------------------------------


def test_backup_while_writing_then_restore_gives_back_every_row(
    app, db, s3, keys, dead_mans_switch, tmp_path
):
    database, project, _ = app
    url, pings = dead_mans_switch
    env = env_for(app, db, s3, keys, BACKUP_PING_URL=url)
    log = tmp_path / "web.log"
    with web(project, env, log) as client:
        create_note(client, NEEDLE, "the body\nwith a newline, a tab\tand 'quotes' ✓")
        for i in range(100):
            create_note(client, f"note {i}", "word " * (i % 7))
        seeded = all_notes(client)
        with httpx.Client(base_url=client.base_url, timeout=30) as other:
            writer = Writer(lambda title: create_note(other, title))
            writer.start()
            while writer.written < 5 and writer.is_alive():
                time.sleep(0.01)
            try:
                backup = run(project, env, "bin/backup")
            finally:
                writer.stop.set()
                writer.join()
        written = all_notes(client)
    assert writer.error is None, writer.error
    assert backup.returncode == 0, backup.stderr
    assert "uploaded" in backup.stdout
    assert pings == ["/ping/backup"]
    [name] = good_backups(s3.names(prefix_of(env)), database)

    db.wipe()
    restore = run(
        project, env, "bin/restore", "--identity", str(keys["identity"]), "latest"
    )

    assert restore.returncode == 0, restore.stderr
    assert name in restore.stdout
    with web(project, env, log) as client:
        restored = all_notes(client)
    # One consistent moment: every note from before the backup, then a prefix
    # of those written during it, each equal field for field.
    assert restored == written[: len(restored)]
    assert restored[: len(seeded)] == seeded
    assert len(restored) > len(seeded)
    assert db.sql(f"SELECT count(*) FROM {MIGRATIONS_TABLE}") == "1"


def test_backup_cannot_be_read_without_the_private_key(app, db, s3, keys, tmp_path):
    database, project, _ = app
    env = env_for(app, db, s3, keys)
    seed(db, 20)
    run(project, env, "bin/backup", check=True)
    [name] = good_backups(s3.names(prefix_of(env)), database)

    body = (
        s3.client()
        .get_object(Bucket=BUCKET, Key=f"{prefix_of(env)}/{name}")["Body"]
        .read()
    )
    (tmp_path / name).write_bytes(body)

    assert body.startswith(b"age-encryption.org/v1\n")
    assert NEEDLE.encode() not in body
    stranger = subprocess.run(
        ["age", "-d", "-i", keys["stranger"], tmp_path / name],
        capture_output=True,
        check=False,
    )
    assert stranger.returncode != 0
    assert b"no identity matched" in stranger.stderr
    operator = subprocess.run(
        ["age", "-d", "-i", keys["identity"], tmp_path / name],
        capture_output=True,
        check=False,
    )
    assert operator.returncode == 0
    if database == "sqlite":  # uncompressed: the plain snapshot holds the title
        assert NEEDLE.encode() in operator.stdout


def test_retention_deletes_old_backups_but_keeps_the_newest(app, db, s3, keys):
    database, project, _ = app
    env = env_for(app, db, s3, keys, BACKUP_RETENTION_DAYS="30", BACKUP_KEEP_LAST="5")
    prefix = prefix_of(env)
    now = datetime.now(UTC)

    def stamped(days_ago: float) -> str:
        when = now - timedelta(days=days_ago)
        return f"{SLUG}-{when:%Y%m%dT%H%M%SZ}.{KIND[database]}.age"

    old = [stamped(40 + i) for i in range(8)]  # past retention, newest first
    recent = [stamped(2), stamped(29)]  # inside retention
    foreign = ["README.txt", f"{SLUG}-manual-copy.age"]  # not ours to delete
    for key in old + recent + foreign:
        s3.client().put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=b"old")
    seed(db, 5)

    result = run(project, env, "bin/backup", check=True)

    names = s3.names(prefix)
    [today] = sorted(set(good_backups(names, database)) - set(old) - set(recent))
    # The newest five (today, two recent, two old) stay; older than 30 days go.
    assert sorted(names) == sorted([today, *recent, *old[:2], *foreign])
    assert "deleted 6 old backup(s)" in result.stdout


@pytest.mark.parametrize(
    "failure",
    ["wrong credentials", "missing bucket", "unreachable database", "disk full"],
)
def test_backup_failure_exits_with_one_clear_line_and_uploads_nothing(
    app, db, s3, keys, dead_mans_switch, failure, request
):
    database, project, _ = app
    url, pings = dead_mans_switch
    env = env_for(app, db, s3, keys, BACKUP_PING_URL=url)
    seed(db, 5)
    expected = {
        "wrong credentials": "access denied",
        "missing bucket": "bucket or path not found",
        "unreachable database": "database",
        "disk full": "no space left on device|database or disk is full",
    }[failure]
    if failure == "wrong credentials":
        env["RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY"] = "not-the-secret"
    elif failure == "missing bucket":
        env["BACKUP_REMOTE"] = "offsite:no-such-bucket/app"
    elif failure == "disk full":
        # Random bodies do not compress: the encrypted backup outgrows 16 KiB.
        db.insert(*((f"big {i}", os.urandom(4500).hex(), None) for i in range(10)))
        env["TMPDIR"] = str(request.getfixturevalue("tiny_tmpdir"))
    elif database == "postgres":
        env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db.path.parent / 'gone' / 'app.sqlite3'}"

    result = run(project, env, "bin/backup")

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bin/backup: ")
    assert re.search(expected, lines[0]), lines[0]
    assert good_backups(s3.names(prefix_of(env)), database) == []
    assert pings == []


def test_restore_refuses_a_database_with_data_unless_forced(app, db, s3, keys):
    _, project, _ = app
    env = env_for(app, db, s3, keys)
    seed(db, 10)
    run(project, env, "bin/backup", check=True)
    backed_up = db.rows()
    db.insert(("written after the backup", "", None))
    current = db.rows()
    identity = str(keys["identity"])

    refused = run(project, env, "bin/restore", "--identity", identity)

    assert refused.returncode != 0
    assert "--force" in refused.stderr
    assert "notes" in refused.stderr
    assert db.rows() == current

    # The key piped in, as docs/backups.md shows: it never lands on the server.
    with keys["identity"].open() as key:
        forced = run(
            project, env, "bin/restore", "--identity", "-", "--force", stdin=key
        )

    assert forced.returncode == 0, forced.stderr
    assert db.rows() == backed_up


def test_restore_onto_a_freshly_deployed_server_needs_no_force(app, db, s3, keys):
    _, project, _ = app
    env = env_for(app, db, s3, keys)
    seed(db, 10)
    run(project, env, "bin/backup", check=True)
    backed_up = db.rows()
    db.wipe()
    run(project, env, "bin/release", check=True)  # the first deploy's migrations

    restore = run(project, env, "bin/restore", "--identity", str(keys["identity"]))

    assert restore.returncode == 0, restore.stderr
    assert db.rows() == backed_up


def test_restore_rejects_bad_input_with_one_clear_line_and_changes_nothing(
    app, db, s3, keys
):
    _, project, _ = app
    env = env_for(app, db, s3, keys)
    seed(db, 3)
    run(project, env, "bin/backup", check=True)
    db.wipe()
    identity, stranger = str(keys["identity"]), str(keys["stranger"])
    cases = {
        "--identity KEYFILE is required": [],
        "cannot read the identity file": ["--identity", "/nonexistent/key.txt"],
        "no backup named": ["--identity", identity, f"{SLUG}-20200101T000000Z.x.age"],
        "without a path": ["--identity", identity, "../elsewhere.age"],
        "cannot decrypt": ["--identity", stranger],
        "unknown option --bogus": ["--identity", identity, "--bogus"],
        "one backup name at most": ["--identity", identity, "latest", "latest"],
    }
    for message, args in cases.items():
        result = run(project, env, "bin/restore", *args)

        assert result.returncode != 0, args
        assert result.stderr.strip().splitlines()[-1].startswith("bin/restore: "), args
        assert message in result.stderr, (args, result.stderr)
    if db.kind == "postgres":
        assert (
            db.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
        )
    else:
        assert not db.path.exists()


# The page differs by deploy style and database (and Flask's separate queue file).
DOC_COMBOS = [
    ("django", "postgres", "systemd"),
    ("fastapi", "sqlite", "systemd"),
    ("fastapi", "postgres", "compose"),
    ("flask", "sqlite", "compose"),
]


@pytest.mark.parametrize("combo", DOC_COMBOS, ids=combo_id)
def test_every_project_documents_backups_and_restores(combo, tmp_path):
    project = bake(tmp_path, *combo)
    text = (project / "docs" / "backups.md").read_text()
    for topic in (
        "## Make the key pair",
        "Backblaze B2",
        "Hetzner",
        "AWS S3",
        "Any other S3-compatible",
        "### Onto a fresh server",
        "## Test a restore every month",
        "Uploaded files",
        "bin/restore --identity KEYFILE [--force] [NAME|latest]",
    ):
        assert topic in text, topic
    assert "\n\n\n" not in text
    assert not re.search(r"[ \t]$", text, flags=re.MULTILINE)
    settings = (project / ".env.example").read_text()
    for name in (
        "BACKUP_REMOTE",
        "BACKUP_AGE_RECIPIENT",
        "BACKUP_RETENTION_DAYS",
        "BACKUP_KEEP_LAST",
        "BACKUP_PING_URL",
        "RCLONE_CONFIG_OFFSITE_TYPE",
    ):
        assert re.search(rf"^{name}=", settings, flags=re.MULTILINE), name
