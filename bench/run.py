"""`make bench`: what one VM serves with the generated defaults, beside the bare
framework underneath, and how fast the job queue drains.

For each framework x database it bakes a project, installs it, runs
`bin/release`, seeds the `notes` table and starts `bin/web` behind the
project's own nginx site (`deploy/nginx/<slug>.conf`) with TLS on loopback.
wrk drives a fixed number of connections for a fixed time, after a warm-up,
against the generated endpoints and, through the same nginx and the same
gunicorn settings, against bare reference apps (`bench/reference/`) and an
nginx `return 200`. It prints a table and writes JSON and Markdown to
`bench/results/`. See docs/performance.md for how to read it.

    .venv/bin/python bench/run.py [--frameworks django,flask] [--databases sqlite]
        [--duration 8] [--warmup 2] [--connections 16] [--no-queue]
        [--gunicorn-args "--worker-class gthread --threads 2"] [--docs]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
TEMPLATE = BENCH.parent
sys.path.insert(0, str(TEMPLATE / "tests"))

import napkin_testing as nt

RESULTS = BENCH / "results"
REFERENCE = BENCH / "reference"
DOCS = TEMPLATE / "docs" / "performance.md"
# Installed with the test virtualenv (requirements-test.txt).
PY_SPY = Path(sys.executable).parent / "py-spy"
# The site's server_name. wrk sends the URL's host as TLS SNI, and the site
# refuses a handshake for any other name, so wrk runs in a private mount
# namespace where /etc/hosts maps this name to 127.0.0.1 (see `Wrk`).
DOMAIN = "bench.napkin.test"
SLUG = "benchapp"

# The bare reference apps, as gunicorn app modules (bench/reference/).
BARE_APP = {
    "django": "bare_django.app:application",
    "fastapi": "bare_fastapi:app",
    "flask": "bare_flask:app",
}

NOTE_BODY = (
    "One VM, one database, one app process behind nginx. This note is a "
    "benchmark row: a title, a body of a few sentences like this one, and the "
    "timestamps every note carries. It is read by id, listed twenty to a page "
    "and created again under load while wrk measures each endpoint in turn."
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- measuring --------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float:
    """CPU time of a process and all its descendants, living and reaped."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""

LUA_RANDOM = r"""
local counter = 1
setup = function(thread)
  thread:set("seed", counter)
  counter = counter + 1
end
init = function(args)
  math.randomseed(os.time() * 1000 + seed)
end
"""


@dataclass
class Endpoint:
    name: str
    path: str  # Lua pattern for random ids/pages: {id}, {page}
    method: str = "GET"
    body: str | None = None
    expect: int = 200

    def lua(self, ids: tuple[int, int] = (1, 1), pages: int = 1) -> str:
        if self.method != "GET":
            headers = 'wrk.headers["Content-Type"] = "application/json"\n'
            return (
                f"wrk.method = {json.dumps(self.method)}\n"
                f"wrk.body = {json.dumps(self.body)}\n{headers}"
                f"wrk.path = {json.dumps(self.path)}\n{LUA_DONE}"
            )
        if "{" not in self.path:
            return f"wrk.path = {json.dumps(self.path)}\n{LUA_DONE}"
        path = self.path.replace("{id}", f'" .. math.random({ids[0]}, {ids[1]}) .. "')
        path = path.replace("{page}", f'" .. math.random(1, {pages}) .. "')
        return (
            f"{LUA_RANDOM}\nrequest = function()\n"
            f'  return wrk.format(nil, "{path}")\nend\n{LUA_DONE}'
        )


GENERATED = [
    Endpoint("healthz", "/healthz"),
    Endpoint("read", "/api/notes/{id}"),
    Endpoint("list", "/api/notes?page={page}&per_page=20"),
    Endpoint(
        "create",
        "/api/notes",
        method="POST",
        body=json.dumps({"title": "A note from wrk", "body": NOTE_BODY}),
        expect=201,
    ),
]
BARE = {
    "hello": Endpoint("hello", "/hello"),
    "select1": Endpoint("select1", "/select1"),
    "pk": Endpoint("pk", "/notes/{id}"),
}
# Each generated figure is divided by this bare reference's.
REFERENCE_OF = {"healthz": "select1", "read": "pk", "list": "pk", "create": "pk"}


@dataclass
class Row:
    """One measured point: a server, an endpoint, wrk's figures and CPU."""

    app: str  # "generated", "bare" or "nginx"
    framework: str
    database: str
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    app_cpu_ms: float  # per request: the app server (master and workers)
    db_cpu_ms: float  # per request: PostgreSQL's processes (0 for SQLite)
    nginx_cpu_ms: float  # per request: nginx's master and workers
    ratio: dict = field(default_factory=dict)
    rounds_rps: list = field(default_factory=list)  # req/s of each round
    rounds_cpu: list = field(default_factory=list)  # app CPU ms/req of each round


class Wrk:
    """wrk against the nginx site, resolving DOMAIN to loopback for itself only."""

    def __init__(self, workdir: Path, args):
        self.args = args
        self.hosts = workdir / "hosts"
        self.hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {DOMAIN}\n")
        self.scripts = workdir / "lua"
        self.scripts.mkdir(exist_ok=True)
        # A private mount namespace: /etc/hosts itself is never touched.
        self.prefix = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            self.prefix[1:1] = ["--user", "--map-root-user"]

    def run(self, port: int, lua: str, seconds: float) -> dict:
        script = self.scripts / f"{secrets.token_hex(4)}.lua"
        script.write_text(lua)
        wrk = (
            f"exec wrk --threads {self.args.threads} "
            f"--connections {self.args.connections} --duration {round(seconds)}s "
            f"--timeout 5s --script {script} https://{DOMAIN}:{port}/"
        )
        shell = f"mount --bind {self.hosts} /etc/hosts && {wrk}"
        out = subprocess.run(
            [*self.prefix, "sh", "-c", shell],
            check=False,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        for line in out.stdout.splitlines():
            if line.startswith("BENCH "):
                return json.loads(line[6:])
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def measure(wrk, port, endpoint, lua, servers, meta) -> Row:
    """Warm up, then one timed wrk run with CPU time taken around it."""
    wrk.run(port, lua, wrk.args.warmup)
    before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    result = wrk.run(port, lua, wrk.args.duration)
    after = {name: cpu_seconds(pid) for name, pid in servers.items()}
    requests = max(result["requests"], 1)

    def per_request(name):
        return round((after[name] - before[name]) * 1000 / requests, 3)

    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    row = Row(
        endpoint=endpoint,
        rps=round(result["requests"] / (result["duration_us"] / 1e6), 1),
        p50_ms=round(result["p50_us"] / 1000, 2),
        p99_ms=round(result["p99_us"] / 1000, 2),
        errors=errors,
        requests=result["requests"],
        app_cpu_ms=per_request("app"),
        db_cpu_ms=per_request("db"),
        nginx_cpu_ms=per_request("nginx"),
        **meta,
    )
    log(
        f"  {meta['app']:9} {meta['framework']:7} {meta['database']:8} "
        f"{endpoint:8} {row.rps:9.1f} req/s  p50 {row.p50_ms:6.2f} ms  "
        f"p99 {row.p99_ms:6.2f} ms  errors {errors}  "
        f"app CPU {row.app_cpu_ms:.2f} ms/req"
    )
    return row


# --- nginx ------------------------------------------------------------------


def render_site(
    project: Path, app_port: int, http_port: int, https_port: int, cert: Path, key: Path
) -> str:
    """The generated site, moved to free loopback ports and this run's files.

    Only addresses and paths change; every other directive is the project's.
    """
    site = (project / "deploy" / "nginx" / f"{SLUG}.conf").read_text()
    site = re.sub(r"^\s*listen \[::\].*\n", "", site, flags=re.MULTILINE)
    site = re.sub(r"listen 80\b", f"listen 127.0.0.1:{http_port}", site)
    site = re.sub(r"listen 443\b", f"listen 127.0.0.1:{https_port}", site)
    site = re.sub(r"server 127\.0\.0\.1:8000\b", f"server 127.0.0.1:{app_port}", site)
    site = re.sub(r"ssl_certificate .*;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key .*;", f"ssl_certificate_key {key};", site)
    site = re.sub(r"alias /srv/\S+;", f"alias {project / 'staticfiles'}/;", site)
    site = re.sub(r"root /var/www/certbot;", f"root {project};", site)
    if f"127.0.0.1:{app_port}" not in site:
        raise RuntimeError("the nginx site has no `server 127.0.0.1:8000;` upstream")
    return site


class Nginx:
    """nginx as Debian configures it (nginx.conf's http block), one site in it."""

    def __init__(
        self, prefix: Path, site: str, cert: Path, key: Path, ceiling_port: int
    ):
        self.prefix = prefix
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "site.conf").write_text(site)
        temp = "".join(
            f"    {kind}_temp_path {prefix / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would run as `nobody` and could not write nginx's
        # temp files under this run's private directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(f"""\
daemon off;
{user}worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{
    worker_connections 768;
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log {prefix}/access.log;
    gzip on;
{temp}
    include {prefix}/site.conf;

    # The ceiling: the same TLS, no upstream, a constant body.
    server {{
        listen 127.0.0.1:{ceiling_port} ssl;
        server_name {DOMAIN};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            default_type application/json;
            return 200 '{{"status": "ok"}}';
        }}
    }}
}}
""")
        self.proc = None

    def start(self) -> None:
        conf = self.prefix / "nginx.conf"
        base = [
            "nginx",
            "-c",
            str(conf),
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
        ]
        check = subprocess.run(
            [*base, "-t"], check=False, capture_output=True, text=True
        )
        if check.returncode:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.proc = subprocess.Popen(
            base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --- HTTP through nginx from Python (SNI = DOMAIN) ---------------------------


class _SiteConnection(http.client.HTTPSConnection):
    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=DOMAIN)


def request(port: int, method: str, path: str, body: dict | None = None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = _SiteConnection("127.0.0.1", port, timeout=10, context=context)
    headers = {"Host": DOMAIN}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_healthy(port: int, path: str, server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            status, body = request(port, "GET", path)
            if status == 200:
                return
            last = f"{status} {body[:300]!r}"
        except OSError as error:
            last = repr(error)
        time.sleep(0.2)
    raise RuntimeError(f"{path} never answered 200 ({last}):\n{server.log_tail()}")


# --- app servers -----------------------------------------------------------


class Server:
    """A process group we started (bin/web or gunicorn), logged to a file."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict, logfile: Path):
        self.name, self.logfile = name, logfile
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=logfile.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.proc.pid

    def log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_checked(cmd, cwd, env, what: str, timeout: float = 600) -> float:
    start = time.monotonic()
    result = subprocess.run(
        cmd,
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        raise RuntimeError(
            f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return time.monotonic() - start


# --- the database ---------------------------------------------------------------


def sql(database: str, url: str, pg, statement: str) -> str:
    if database == "postgres":
        return pg.psql(statement, dbname=url.rsplit("/", 1)[1])
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn, conn:
        rows = conn.execute(statement).fetchall()
        return "\n".join("|".join(map(str, row)) for row in rows)


def seed(port: int, database: str, url: str, pg, rows: int) -> tuple[int, int]:
    """One note through the API (so timestamps have the app's own format),
    then copies of it by SQL up to `rows`. Returns the id range."""
    status, body = request(
        port, "POST", "/api/notes", {"title": "Seed note", "body": NOTE_BODY}
    )
    if status != 201:
        raise RuntimeError(f"POST /api/notes answered {status}: {body[:500]!r}")
    first = json.loads(body)["id"]
    sql(
        database,
        url,
        pg,
        f"""
        INSERT INTO notes (title, body, word_count, created_at, updated_at)
        WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
        SELECT 'Note ' || i, s.body, 57, s.created_at, s.updated_at
        FROM n, notes AS s WHERE s.id = {first}
    """,
    )
    if database == "postgres":
        sql(database, url, pg, "ANALYZE notes")
    low, high = sql(database, url, pg, "SELECT min(id), max(id) FROM notes").split("|")
    return int(low), int(high)


# --- one framework x database ---------------------------------------------------


@dataclass
class Combo:
    framework: str
    database: str
    bake_s: float = 0.0
    install_s: float = 0.0
    release_s: float = 0.0
    workers: str = ""


def app_env(project, venv, database_url, port, extra):
    env = nt.project_env(
        project,
        venv,
        DATABASE_URL=database_url,
        APP_ENV="production",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS=DOMAIN,
        HOST="127.0.0.1",
        PORT=str(port),
        STATIC_ROOT=str(project / "staticfiles"),
        UV_NO_SYNC="1",
    )
    # A server writes bytecode caches on first start; workers boot faster.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def describe_workers(server_pid: int) -> str:
    """What gunicorn actually started: worker count and their threads."""
    try:
        workers = psutil.Process(server_pid).children()
        threads = max((w.num_threads() for w in workers), default=0)
        return f"{len(workers)} workers, up to {threads} threads each"
    except psutil.NoSuchProcess:
        return "?"


def bench_combo(
    combo, rows_out, args, work, pg, wrk, cert, key, rows, hello_done
) -> None:
    """Measure one framework x database; append to `combo` and `rows_out` as it goes."""
    fw, db = combo.framework, combo.database
    base = work / f"{fw}-{db}"
    log(f"{fw} + {db}: baking")
    start = time.monotonic()
    project = nt.bake(base / "out", fw, db, project_name=SLUG, domain_name=DOMAIN)
    combo.bake_s = round(time.monotonic() - start, 2)
    # `.env` holds development values for a laptop; the server's settings come
    # from the environment, as below.
    (project / ".env").unlink(missing_ok=True)
    # `make install` on a machine whose uv cache has the packages: uv sync
    # into the project's own .venv. The servers then run from the virtualenv
    # the template's tests share (same pinned dependencies).
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"))
    }
    combo.install_s = round(
        run_checked(["uv", "sync", "--quiet"], project, clean, "uv sync"), 2
    )
    venv = nt.project_venv(project)

    if db == "postgres":
        url = pg.create_database(f"bench_{fw}")
    else:
        url = f"sqlite:///{base / 'app.sqlite3'}"
    app_port, http_port, https_port, ceiling_port = (nt.free_port() for _ in range(4))
    bare_port, bare_http_port, bare_https_port = (nt.free_port() for _ in range(3))
    extra = {}
    if args.web_concurrency:
        extra["WEB_CONCURRENCY"] = str(args.web_concurrency)
    if args.gunicorn_args:
        extra["GUNICORN_CMD_ARGS"] = args.gunicorn_args
    env = app_env(project, venv, url, app_port, extra)
    combo.release_s = round(
        run_checked(["bin/release"], project, env, "bin/release"), 2
    )
    log(
        f"  baked in {combo.bake_s}s, uv sync in {combo.install_s}s, "
        f"bin/release in {combo.release_s}s"
    )

    # One nginx, two copies of the generated site: the app's, and the same
    # site in front of the bare reference, so both are measured in turns.
    site = render_site(project, app_port, http_port, https_port, cert, key)
    bare_site = render_site(
        project, bare_port, bare_http_port, bare_https_port, cert, key
    )
    nginx = Nginx(
        base / "nginx", site + second_site(bare_site), cert, key, ceiling_port
    )
    nginx.start()
    pg_pid = pg.postmaster_pid() if db == "postgres" else None
    meta = {"framework": fw, "database": db}
    web = Server("bin/web", ["bin/web"], project, env, base / "web.log")
    bare = Server(
        "bare",
        ["gunicorn", "--config", "gunicorn.conf.py", BARE_APP[fw]],
        project,
        dict(app_env(project, venv, url, bare_port, extra), PYTHONPATH=str(REFERENCE)),
        base / "bare.log",
    )
    try:
        wait_healthy(https_port, "/healthz", web)
        wait_healthy(bare_https_port, "/select1", bare)
        ids = seed(https_port, db, url, pg, rows)
        log(f"  seeded notes {ids[0]}..{ids[1]}")
        # Each generated endpoint next to its reference, round after round:
        # drift in the machine's speed hits both alike.
        targets = {
            "generated": (web, https_port, {e.name: e for e in GENERATED}),
            "bare": (bare, bare_https_port, BARE),
        }
        order = [
            ("generated", "healthz"),
            ("bare", "select1"),
            ("generated", "read"),
            ("bare", "pk"),
            ("generated", "list"),
            ("generated", "create"),
            ("bare", "hello"),
        ]
        order = [
            (app, name)
            for app, name in order
            if (not args.endpoints or name in args.endpoints)
            and not (name == "hello" and fw in hello_done)
        ]
        # Every endpoint once before the rounds, unmeasured: the first load
        # on a fresh server also starts its threads, fills SQLAlchemy's
        # statement cache and opens nginx's upstream connections, and would
        # count against whichever endpoint came first.
        scripts = {
            (app, name): targets[app][2][name].lua(ids=ids, pages=rows // 20 // 2)
            for app, name in order
        }
        log("  warming every endpoint")
        for app, name in order:
            wrk.run(targets[app][1], scripts[(app, name)], max(args.warmup, 2))
        rounds: dict[tuple[str, str], list[Row]] = {key: [] for key in order}
        for number in range(args.rounds):
            log(f"  round {number + 1} of {args.rounds}")
            # Every other round backwards, so neither of a pair always goes
            # first (right after a warm-up, or last, as the machine drifts).
            for app, name in order if number % 2 == 0 else order[::-1]:
                server, port, _ = targets[app]
                lua = scripts[(app, name)]
                servers = {"app": server.pid, "db": pg_pid, "nginx": nginx.pid}
                row = measure(wrk, port, name, lua, servers, {"app": app, **meta})
                rounds[(app, name)].append(row)
        for rows_of_one in rounds.values():
            rows_out.append(median_row(rows_of_one))
        for app, name in order:
            if name in args.profile:
                server, port, _ = targets[app]
                label = name if app == "generated" else f"bare-{name}"
                profile(server.pid, wrk, port, scripts[(app, name)], base, label, args)
        if ("bare", "hello") in rounds:
            hello_done.add(fw)
        combo.workers = describe_workers(web.pid)
        log(f"  bin/web ran {combo.workers}")

        if args.ceiling:
            args.ceiling = False
            rows_out.append(
                measure(
                    wrk,
                    ceiling_port,
                    "return 200",
                    LUA_DONE,
                    {"app": None, "db": None, "nginx": nginx.pid},
                    {"app": "nginx", "framework": "-", "database": "-"},
                )
            )
    finally:
        web.stop()
        bare.stop()
        nginx.stop()


def second_site(site: str) -> str:
    """The site again for another upstream: its own upstream name, and without
    the http-level TLS session lines the first copy already set."""
    site = re.sub(r"^ssl_session\w* .*;\n", "", site, flags=re.MULTILINE)
    site = re.sub(r"\bupstream (\w+)", r"upstream \1_bare", site)
    return "\n" + re.sub(
        r"proxy_pass http://(\w+);", r"proxy_pass http://\1_bare;", site
    )


def median_row(rows: list[Row]) -> Row:
    """One row for several rounds: the median of each figure, errors summed."""
    first = rows[0]

    def median(name):
        return statistics.median(getattr(row, name) for row in rows)

    return Row(
        app=first.app,
        framework=first.framework,
        database=first.database,
        endpoint=first.endpoint,
        rps=round(median("rps"), 1),
        p50_ms=round(median("p50_ms"), 2),
        p99_ms=round(median("p99_ms"), 2),
        errors=sum(row.errors for row in rows),
        requests=sum(row.requests for row in rows),
        app_cpu_ms=round(median("app_cpu_ms"), 3),
        db_cpu_ms=round(median("db_cpu_ms"), 3),
        nginx_cpu_ms=round(median("nginx_cpu_ms"), 3),
        rounds_rps=[row.rps for row in rows],
        rounds_cpu=[row.app_cpu_ms for row in rows],
    )


def profile(pid, wrk, port, lua, base, name, args) -> None:
    """py-spy on every worker during one more run of an endpoint: where the time goes."""
    if not PY_SPY.exists():
        log("  --profile: py-spy is not installed (pip install py-spy)")
        return
    workers = psutil.Process(pid).children()
    seconds = int(args.duration)
    spies = [
        py_spy(w.pid, seconds, base / f"profile-{name}-{w.pid}.txt") for w in workers
    ]
    wrk.run(port, lua, seconds + 1)
    for spy in spies:
        spy.wait(60)
    out = RESULTS / f"profile-{base.name}-{name}.txt"
    out.write_text(summarise_profiles(sorted(base.glob(f"profile-{name}-*.txt"))))
    log(f"  profile of {name}: {out.relative_to(TEMPLATE)}")


def py_spy(pid: int, seconds: int, output: Path, *extra: str) -> subprocess.Popen:
    """py-spy sampling `pid` for `seconds`, in its raw format, in the background."""
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            *extra,
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
            # Only the thread holding the GIL: where Python spends CPU,
            # not where threads wait for the database or a socket.
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise_profiles(files) -> str:
    """Self and cumulative share of samples per function, from py-spy's raw output."""
    selfs, cumul, total = {}, {}, 0
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            # "function (file.py:123)": one entry per function, not per line.
            frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
            selfs[frames[-1]] = selfs.get(frames[-1], 0) + n
            for frame in set(frames):
                cumul[frame] = cumul.get(frame, 0) + n
    lines = [f"{total} samples", "", "self%  function"]
    for frame, n in sorted(selfs.items(), key=lambda kv: -kv[1])[:40]:
        lines.append(f"{100 * n / total:5.1f}  {frame}")
    lines += ["", "cumulative%  function"]
    for frame, n in sorted(cumul.items(), key=lambda kv: -kv[1])[:60]:
        lines.append(f"{100 * n / total:5.1f}  {frame}")
    return "\n".join(lines) + "\n"


# --- the job queue ------------------------------------------------------------


def bench_queue(db, args, work, pg) -> list[dict]:
    """One process enqueues N no-op jobs; then `bin/worker` drains them.

    With --queue-concurrency, the same again with the queue's own command and
    more concurrency than the generated default, to show what that buys.
    """
    fw = "fastapi"  # its worker imports JOBS_IMPORT_PATHS, where the no-op job is
    base = work / f"queue-{db}"
    project = nt.bake(base / "out", fw, db, project_name=SLUG, domain_name=DOMAIN)
    (project / ".env").unlink(missing_ok=True)
    venv = nt.project_venv(project)
    if db == "postgres":
        url = pg.create_database("bench_queue")
    else:
        url = f"sqlite:///{base / 'app.sqlite3'}"
    env = app_env(
        project,
        venv,
        url,
        nt.free_port(),
        {
            # The project directory too: the `procrastinate` console script does
            # not put the working directory on sys.path (bin/worker, FastAPI).
            "PYTHONPATH": f"{project}:{BENCH}",
            "JOBS_IMPORT_PATHS": "napkin_bench_jobs",
            "NAPKIN_BENCH_JOBS": f"{SLUG}.jobs",
        },
    )
    run_checked(["bin/release"], project, env, "bin/release")
    if db == "postgres" and not sql(
        db, url, pg, "SELECT to_regclass('procrastinate_jobs')"
    ):
        # procrastinate's own tables, when the app's migrations do not make them.
        run_checked(
            ["procrastinate", f"--app={SLUG}.jobs.app", "schema", "--apply"],
            project,
            env,
            "procrastinate schema --apply",
        )
    runs = [("bin/worker (default)", ["bin/worker"])]
    if args.queue_concurrency:
        n = str(args.queue_concurrency)
        if db == "postgres":
            cmd = [
                "procrastinate",
                f"--app={SLUG}.jobs.app",
                "worker",
                "--concurrency",
                n,
            ]
        else:
            cmd = [
                "huey_consumer",
                f"{SLUG}.jobs.huey",
                "--workers",
                n,
                "--worker-type",
                "thread",
            ]
        runs.append((f"concurrency {n}", cmd))
    results = []
    for label, cmd in runs:
        results.append(
            drain_queue(db, url, pg, project, venv, env, base, label, cmd, args)
        )
    return results


def drain_queue(db, url, pg, project, venv, env, base, label, cmd, args) -> dict:
    jobs = args.jobs
    out = subprocess.run(
        [str(venv / "bin" / "python"), str(BENCH / "queue_enqueue.py"), str(jobs)],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode:
        raise RuntimeError(f"enqueue failed:\n{out.stdout}\n{out.stderr[-3000:]}")
    enqueue_s = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]

    if db == "postgres":
        count_sql = (
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN "
            "('todo', 'doing') AND task_name LIKE 'napkin_bench_jobs.%'"
        )
    else:
        count_sql = "SELECT count(*) FROM task"

    def pending() -> int:
        return int(sql(db, url, pg, count_sql))

    queued = pending()
    if queued < jobs:
        raise RuntimeError(f"only {queued} of {jobs} jobs are in the queue")
    name = re.sub(r"\W+", "-", label).strip("-")
    worker = Server(label, cmd, project, env, base / f"worker-{name}.log")
    spy = None
    if "worker" in args.profile and PY_SPY.exists():
        # Sampled from its start: most samples fall in the drain.
        seconds = int(max(20, jobs / 100))
        spy = py_spy(
            worker.pid, seconds, base / f"profile-{name}.txt", "--subprocesses"
        )
    cpu = {
        "worker": worker.pid,
        "db": pg.postmaster_pid() if db == "postgres" else None,
    }
    first = cpu0 = None
    first_left = left = queued
    try:
        started = time.monotonic()
        deadline = started + max(120, jobs / 20)
        while time.monotonic() < deadline:
            left = pending()
            now = time.monotonic()
            if first is None and left < queued:
                first, first_left = now, left
                cpu0 = {k: cpu_seconds(v) for k, v in cpu.items()}
            if left == 0:
                break
            if worker.proc.poll() is not None:
                raise RuntimeError(f"{label} exited:\n{worker.log_tail()}")
            time.sleep(0.05)
        done = time.monotonic()
        cpu1 = {k: cpu_seconds(v) for k, v in cpu.items()}
    finally:
        if spy is not None:
            # py-spy writes its samples when interrupted (Ctrl-C); SIGTERM
            # would end it with nothing written.
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        worker.stop()
    if spy is not None:
        out = RESULTS / f"profile-queue-{db}-{name}.txt"
        out.write_text(summarise_profiles([base / f"profile-{name}.txt"]))
        log(f"  profile of {label}: {out.relative_to(TEMPLATE)}")
    if left or first is None:
        raise RuntimeError(
            f"{left} of {queued} jobs left after {done - started:.0f}s:\n"
            f"{worker.log_tail()}"
        )
    drained = first_left
    result = {
        "database": db,
        "queue": "procrastinate" if db == "postgres" else "huey",
        "worker": label,
        "jobs": jobs,
        "enqueue_per_s": round(jobs / enqueue_s, 1),
        "drain_per_s": round(drained / (done - first), 1),
        "worker_start_s": round(first - started, 2),
        "worker_cpu_ms_per_job": round(
            (cpu1["worker"] - cpu0["worker"]) * 1000 / drained, 3
        ),
        "db_cpu_ms_per_job": round((cpu1["db"] - cpu0["db"]) * 1000 / drained, 3),
    }
    log(
        f"  queue {db}, {label}: enqueue {result['enqueue_per_s']} jobs/s, "
        f"drain {result['drain_per_s']} jobs/s, worker CPU "
        f"{result['worker_cpu_ms_per_job']} ms/job, db CPU {result['db_cpu_ms_per_job']} ms/job"
    )
    return result


# --- report ---------------------------------------------------------------------


def add_ratios(rows: list[Row]) -> None:
    """Each figure divided by its reference's (same framework and database)."""
    index = {(r.app, r.framework, r.database, r.endpoint): r for r in rows}
    hello = {(r.framework): r for r in rows if r.endpoint == "hello"}
    ceiling = next((r for r in rows if r.app == "nginx"), None)
    for row in rows:
        if row.app == "generated":
            ref = index.get(
                ("bare", row.framework, row.database, REFERENCE_OF[row.endpoint])
            )
        elif row.endpoint in ("select1", "pk"):
            ref = hello.get(row.framework)
        elif row.endpoint == "hello":
            ref = ceiling
        else:
            ref = None
        if ref is None:
            continue
        row.ratio = {
            "reference": f"{ref.app} {ref.endpoint}",
            "rps": paired(row.rounds_rps, ref.rounds_rps, row.rps, ref.rps, 3),
            "p50": round(row.p50_ms / ref.p50_ms, 2) if ref.p50_ms else None,
            "p99": round(row.p99_ms / ref.p99_ms, 2) if ref.p99_ms else None,
            "cpu": paired(
                row.rounds_cpu, ref.rounds_cpu, row.app_cpu_ms, ref.app_cpu_ms, 2
            ),
        }


def paired(figures, references, figure, reference, digits):
    """The median of the rounds' own ratios, each figure over the reference
    measured beside it in the same round: a machine that slows down between
    rounds moves both sides of a ratio alike. Without rounds on both sides
    (hello, nginx's ceiling), the ratio of the medians."""
    if figures and len(figures) == len(references) and all(references):
        ratios = [f / r for f, r in zip(figures, references, strict=True)]
        return round(statistics.median(ratios), digits)
    return round(figure / reference, digits) if reference else None


def fmt(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def targets(report: dict) -> list[str]:
    """Issue 9's bar: read >= 0.90 x bare pk, healthz >= 0.90 x bare select1."""
    rows = {
        (r["app"], r["framework"], r["database"], r["endpoint"]): r
        for r in report["http"]
    }
    lines = [
        (
            "| framework | database | read / bare pk: req/s | CPU/req "
            "| healthz / bare select1: req/s | CPU/req | errors (all rows) "
            "| req/s ratios >= 0.90 |"
        ),
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for c in report["combos"]:
        key = (c["framework"], c["database"])
        read = rows.get(("generated", *key, "read"), {}).get("ratio", {})
        health = rows.get(("generated", *key, "healthz"), {}).get("ratio", {})
        errors = sum(
            r["errors"]
            for r in report["http"]
            if (r["framework"], r["database"]) == key
        )
        ok = (read.get("rps") or 0) >= 0.9 and (health.get("rps") or 0) >= 0.9
        lines.append(
            f"| {key[0]} | {key[1]} | {fmt(read.get('rps'))} | {fmt(read.get('cpu'))} "
            f"| {fmt(health.get('rps'))} | {fmt(health.get('cpu'))} | {errors} "
            f"| {'yes' if ok else 'no'} |"
        )
    return lines


def markdown(report: dict) -> str:
    s = report["settings"]
    m = report["machine"]
    lines = [
        (
            f"Measured {report['started']} on {m['cpus']} cores ({m['cpu_model']}), "
            f"load average {m['load_before']} before the run; {m['nginx']}. "
            f"wrk: {s['connections']} connections, {s['threads']} threads, "
            f"{s['rounds']} rounds, each endpoint next to its reference: "
            f"{s['warmup']:g} s warm-up then {s['duration']:g} s measured per round; "
            f"every figure is the median of the rounds, and each req/s and CPU "
            f"ratio the median of the rounds' own ratios; "
            f"HTTPS through nginx on loopback; {s['rows']} notes."
        ),
        "",
        *targets(report),
        "",
        (
            "Every row; `x ref` columns divide the row's figure by the "
            "reference's (req/s and CPU: round by round, then the median)."
        ),
        "",
        (
            "| app | framework | database | endpoint | req/s | p50 ms | p99 ms "
            "| errors | app CPU ms/req | db CPU ms/req | reference | x req/s "
            "| x p50 | x p99 | x CPU |"
        ),
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in report["http"]:
        ratio = r["ratio"]
        ref = (
            f"{ratio['reference']} | {fmt(ratio['rps'])} | {fmt(ratio['p50'])} "
            f"| {fmt(ratio['p99'])} | {fmt(ratio['cpu'])}"
            if ratio
            else "- | | | |"
        )
        lines.append(
            f"| {r['app']} | {r['framework']} | {r['database']} | {r['endpoint']} "
            f"| {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['errors']} | {r['app_cpu_ms']:.2f} "
            f"| {fmt(r['db_cpu_ms']) if r['db_cpu_ms'] else '-'} | {ref} |"
        )
    lines += [
        "",
        "| framework | database | bake s | uv sync s | bin/release s | bin/web ran |",
        "|---|---|--:|--:|--:|---|",
    ]
    for c in report["combos"]:
        lines.append(
            f"| {c['framework']} | {c['database']} | {c['bake_s']} | "
            f"{c['install_s']} | {c['release_s']} | {c['workers']} |"
        )
    if report["queue"]:
        lines += [
            "",
            (
                "| database | queue | worker | jobs | enqueued/s (one process) "
                "| drained/s | worker CPU ms/job | db CPU ms/job |"
            ),
            "|---|---|---|--:|--:|--:|--:|--:|",
        ]
        for q in report["queue"]:
            lines.append(
                f"| {q['database']} | {q['queue']} | {q['worker']} | {q['jobs']} "
                f"| {q['enqueue_per_s']:,.0f} | {q['drain_per_s']:,.0f} "
                f"| {q['worker_cpu_ms_per_job']:.2f} "
                f"| {fmt(q['db_cpu_ms_per_job']) if q['db_cpu_ms_per_job'] else '-'} |"
            )
    for f in report.get("failures", []):
        first = f["error"].strip().splitlines()[0] if f["error"].strip() else "?"
        lines += ["", f"**Failed: {f['what']}**: {first}"]
    return "\n".join(lines) + "\n"


def update_docs(table: str) -> None:
    text = DOCS.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise RuntimeError(f"{DOCS} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(f"{head}{start}\n{table}{end}{tail}")


# --- main -----------------------------------------------------------------------


def check_tools() -> None:
    missing = [
        t
        for t in ("wrk", "nginx", "openssl", "uv", "unshare", "mount")
        if shutil.which(t) is None
    ]
    if missing:
        sys.exit(f"bench: missing tools: {', '.join(missing)} (make system-deps)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", default=",".join(nt.FRAMEWORKS))
    parser.add_argument("--databases", default=",".join(nt.DATABASES))
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="measure every endpoint this many times, in turns; report medians",
    )
    parser.add_argument(
        "--duration", type=float, default=4, help="measured seconds per round"
    )
    parser.add_argument(
        "--warmup", type=float, default=1, help="warm-up seconds per round"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rows", type=int, default=5000, help="notes seeded")
    parser.add_argument("--jobs", type=int, default=5000, help="queue benchmark jobs")
    parser.add_argument(
        "--endpoints",
        default="",
        type=lambda v: [e for e in v.split(",") if e],
        help="measure only these (healthz,read,list,create,hello,select1,pk)",
    )
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip nginx's return 200"
    )
    parser.add_argument("--no-queue", action="store_true")
    parser.add_argument(
        "--queue-concurrency",
        type=int,
        default=4,
        help="also drain with this many jobs at once, to compare with the "
        "generated default (0: skip)",
    )
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument(
        "--web-concurrency", type=int, help="WEB_CONCURRENCY for every app"
    )
    parser.add_argument(
        "--gunicorn-args", help="GUNICORN_CMD_ARGS for every app server"
    )
    parser.add_argument(
        "--profile",
        default="",
        type=lambda v: [e for e in v.split(",") if e],
        help="py-spy these after measuring them: endpoints (healthz, read, list, "
        "create, hello, select1, pk) and/or worker (the queue benchmark)",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help=f"replace the table in {DOCS.relative_to(TEMPLATE)}",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--label", default="", help="added to the result file names")
    parser.add_argument(
        "--template",
        type=Path,
        default=nt.TEMPLATE,
        help="the template to bake (default: this checkout)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_tools()
    nt.TEMPLATE = args.template.resolve()
    frameworks = [f for f in args.frameworks.split(",") if f]
    databases = [d for d in args.databases.split(",") if d]
    for name in frameworks:
        if name not in nt.FRAMEWORKS:
            sys.exit(f"bench: unknown framework {name!r} ({', '.join(nt.FRAMEWORKS)})")
    for name in databases:
        if name not in nt.DATABASES:
            sys.exit(f"bench: unknown database {name!r} ({', '.join(nt.DATABASES)})")
    RESULTS.mkdir(exist_ok=True)
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    report = {
        "started": started.isoformat().replace("+00:00", "Z"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "load_before": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "nginx": subprocess.run(
                ["nginx", "-v"], check=False, capture_output=True, text=True
            ).stderr.strip(),
        },
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("docs", "keep", "template")
        },
        "combos": [],
        "http": [],
        "queue": [],
        "failures": [],
    }
    report["settings"]["ceiling"] = True
    log(
        f"bench: {', '.join(frameworks)} x {', '.join(databases)}; "
        f"load average {report['machine']['load_before']}"
    )
    work = Path(tempfile.mkdtemp(prefix="napkin-bench-"))
    pg = nt.start_postgres() if "postgres" in databases else None
    if pg is not None:
        pg.postmaster_pid = lambda: int(
            (pg.datadir / "postmaster.pid").read_text().split()[0]
        )
    rows: list[Row] = []

    def failed(what: str, error: Exception) -> None:
        log(f"FAILED: {what}: {error}")
        report["failures"].append({"what": what, "error": str(error)[-3000:]})

    try:
        cert, key = nt.self_signed_pair(work, DOMAIN)
        wrk = Wrk(work, args)
        args.ceiling = not args.no_ceiling
        hello_done: set[str] = set()
        if not args.no_http:
            for fw in frameworks:
                for db in databases:
                    combo = Combo(fw, db)
                    try:
                        bench_combo(
                            combo,
                            rows,
                            args,
                            work,
                            pg,
                            wrk,
                            cert,
                            key,
                            args.rows,
                            hello_done,
                        )
                    except Exception as error:  # noqa: BLE001 - reported; the rest still run
                        failed(f"{fw} + {db}", error)
                    report["combos"].append(asdict(combo))
        if not args.no_queue:
            for db in databases:
                log(f"queue: {db}")
                try:
                    report["queue"].extend(bench_queue(db, args, work, pg))
                except Exception as error:  # noqa: BLE001 - reported; the rest still run
                    failed(f"queue {db}", error)
    finally:
        if pg is not None:
            pg.stop()
            shutil.rmtree(pg.datadir.parent, ignore_errors=True)
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    order = {"nginx": 0, "bare": 1, "generated": 2}
    rows.sort(key=lambda r: (r.framework != "-", r.framework, r.database, order[r.app]))
    add_ratios(rows)
    report["http"] = [asdict(r) for r in rows]
    report["finished"] = datetime.datetime.now(datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    table = markdown(report)
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + (
        f"-{args.label}" if args.label else ""
    )
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stamp}.md").write_text(table)
    shutil.copy(RESULTS / f"{stamp}.json", RESULTS / "latest.json")
    shutil.copy(RESULTS / f"{stamp}.md", RESULTS / "latest.md")
    print()
    print(table)
    log(f"written: bench/results/{stamp}.json and .md")
    if args.docs:
        update_docs(table)
        log(f"table written into {DOCS.relative_to(TEMPLATE)}")
    return 1 if report["failures"] else 0


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
