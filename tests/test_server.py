"""Tier 5: a real server. Throwaway Debian machines with systemd as PID 1.

The machines themselves first (they boot, answer SSH, and leave nothing behind),
then the generated project provisioned by its own `deploy/bootstrap.sh` and
deployed by `deploy/deploy.sh` on a fresh one, for every systemd combination.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import machines
from napkin_testing import APPS, bake, combo_id, free_port, need, wait_for_port

pytestmark = pytest.mark.slow


# Debian 12 always; Debian 13 too when asked for (its base costs a few more
# minutes to build): NAPKIN_MACHINE_RELEASES=bookworm,trixie.
RELEASES = os.environ.get("NAPKIN_MACHINE_RELEASES", "bookworm").split(",")


@pytest.mark.parametrize("release", RELEASES)
def test_a_machine_boots_with_systemd_and_answers_ssh(make_machine, release):
    machine = make_machine(release)

    state = machine.ssh(
        "systemctl is-system-running --wait", check=False
    ).stdout.strip()
    assert state == "running", machine.ssh("systemctl --failed --no-legend").stdout
    assert machine.ssh("systemd-detect-virt").stdout.strip() == "systemd-nspawn"
    assert machine.ssh("hostname").stdout.strip() == machine.name
    assert machine.ssh("cat /proc/1/comm").stdout.strip() == "systemd"

    machine.destroy()

    assert machines.leftovers(machine) == []


def test_machines_have_their_own_identity_and_network(make_machine):
    first, second = make_machine(), make_machine()

    ids = {m.ssh("cat /etc/machine-id").stdout.strip() for m in (first, second)}
    host_keys = {
        m.ssh("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
        for m in (first, second)
    }
    assert len(ids) == 2 and "" not in ids
    assert len(host_keys) == 2
    assert first.address != second.address
    # Machines reach the host end of their own link, not each other.
    assert (
        first.ssh(
            f"timeout 3 bash -c '</dev/tcp/{second.address}/22'", check=False
        ).returncode
        != 0
    )


def test_apt_reaches_the_mirror_through_nat(machine):
    machine.ssh("apt-get update -qq")

    assert machines.nat_active()


def test_a_wrong_host_key_is_refused(machine, tmp_path):
    wrong = machines.SSHKey.generate(tmp_path / "other-host")
    machine.known_hosts.write_text(
        f"{machine.address} {wrong.public.rsplit(' ', 1)[0]}\n"
    )

    result = machine.ssh("true", check=False)

    assert result.returncode == 255
    assert (
        "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
        or "Host key verification failed" in result.stderr
    )


def test_a_reboot_brings_the_machine_back(machine):
    machine_id = machine.ssh("cat /etc/machine-id").stdout
    machine.ssh("touch /root/survives-reboot")

    machine.reboot()

    assert (
        machine.ssh("systemctl is-system-running --wait", check=False).stdout.strip()
        == "running"
    )
    assert machine.ssh("cat /etc/machine-id").stdout == machine_id
    machine.ssh("test -e /root/survives-reboot")


# --- the generated project on a fresh server, every systemd combination -----

SLUG = "my_app"
DOMAIN = "example.com"
UNITS = (
    f"{SLUG}-web.socket",
    f"{SLUG}-web.service",
    f"{SLUG}-worker.service",
    f"{SLUG}-backup.timer",
    "nginx.service",
)
# What the second run of bootstrap.sh must leave exactly as the first did:
# contents, modes and owners of the files it manages, users, enabled units.
SNAPSHOT = f"""
set -eu
find /etc /srv/{SLUG} /var/lib/{SLUG} /usr/local /opt /var/www -xdev \\
    \\( -path /etc/ld.so.cache -o -name '*.pyc' \\) -prune -o -print0 2>/dev/null \\
  | sort -z | xargs -0 stat -c '%n %a %U:%G %F %s' 2>/dev/null
find /etc /srv/{SLUG} /usr/local /var/www -xdev -type f ! -name '*.pyc' -print0 2>/dev/null \\
  | sort -z | xargs -0 sha256sum
getent passwd; getent group
systemctl list-unit-files --state=enabled --no-legend --no-pager
"""


@dataclass
class Server:
    """A machine provisioned and deployed from a baked project, and what it answered."""

    combo: tuple[str, str]
    machine: machines.Machine
    remote: machines.GitRemote
    work: Path
    cert: Path
    bootstrap_runs: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    deploys: list = field(default_factory=list)
    revisions: list = field(default_factory=list)

    @property
    def database(self) -> str:
        return self.combo[1]

    @property
    def project(self) -> Path:
        return self.remote.project

    def commit(self, message: str, edit=None) -> str:
        return self.remote.commit(message, edit)

    def deploy(self, revision: str, check: bool = True, env: str = ""):
        """deploy.sh on the server over SSH, as root, as CI runs it."""
        result = self.machine.ssh(
            f"{env} /usr/local/sbin/{SLUG}-deploy {revision}", check=False
        )
        self.deploys.append(result)
        if check and result.returncode != 0:
            pytest.fail(
                f"deploy.sh {revision} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
                f"{result.stderr[-3000:]}\n--- journal\n"
                f"{self.journal(f'{SLUG}-web.service', f'{SLUG}-worker.service')}"
            )
        return result

    def https(self, path: str, method: str = "GET", data: dict | None = None):
        """A request from the host to nginx on the machine, verifying its certificate."""
        return machines.https(self.machine, DOMAIN, path, self.cert, method, data)

    def healthz(self) -> dict:
        status, body = self.https("/healthz")
        assert status == 200, body
        return json.loads(body)

    def journal(self, *units: str) -> str:
        return "\n".join(self.machine.journal(unit, lines=40) for unit in units)


def bootstrap(server: Server, repo_url: str) -> subprocess.CompletedProcess:
    """deploy/bootstrap.sh from a copy of the repository, as root, as a user runs it."""
    result = server.machine.ssh(
        f"cd /root/{SLUG} && DEPLOY_REPO={repo_url} ./deploy/bootstrap.sh", check=False
    )
    server.bootstrap_runs.append(result)
    server.snapshots.append(server.machine.ssh(SNAPSHOT).stdout)
    return result


def _combo_param(combo):
    name = combo_id((*combo, "systemd"))
    return pytest.param(combo, id=name, marks=pytest.mark.xdist_group(f"server-{name}"))


@pytest.fixture(scope="module", params=[_combo_param(c) for c in APPS])
def server(request, machine_host, machine_key, tmp_path_factory):
    """A fresh machine, bootstrapped twice and deployed (revision 1) for one combination."""
    need("git", "curl", "wrk", "unshare")
    framework, database = request.param
    work = tmp_path_factory.mktemp(f"server-{framework}-{database}")
    project = bake(work / "bake", framework, database, "systemd")
    machine = machines.Machine.boot(key=machine_key)
    try:
        # The server fetches releases from "GitHub": a bare repository on the
        # host, served read-only by git daemon on the host end of its link.
        with machines.GitRemote(project, work / "remote", machine, SLUG) as remote:
            server = Server(
                (framework, database), machine, remote, work, work / "cert.pem"
            )
            server.revisions.append(server.commit("first"))
            # The user's copy of the repository on the server; .env is for development.
            machine.put(project, f"/root/{SLUG}")
            machine.ssh(f"rm -f /root/{SLUG}/.env")
            for _ in range(2):
                result = bootstrap(server, remote.url)
                if result.returncode != 0:
                    pytest.fail(
                        f"bootstrap.sh exited {result.returncode}:\n{result.stdout[-3000:]}"
                        f"\n{result.stderr[-3000:]}"
                    )
            server.cert.write_text(
                machine.ssh(f"cat /etc/letsencrypt/live/{DOMAIN}/fullchain.pem").stdout
            )
            server.deploy(server.revisions[0])
            yield server
    finally:
        machine.destroy()
        assert machines.leftovers(machine) == []


def test_bootstrap_provisions_a_fresh_server_with_a_self_signed_certificate(server):
    first = server.bootstrap_runs[0]
    assert first.returncode == 0, first.stderr
    assert "self-signed" in first.stdout
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", server.cert],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert DOMAIN in subject


def test_bootstrap_run_twice_changes_nothing(server):
    first, second = server.snapshots[:2]
    changed = [
        line
        for line in difflib.unified_diff(
            first.splitlines(), second.splitlines(), lineterm="", n=0
        )
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == []


def test_the_units_run_and_nginx_serves_the_app_over_https(server):
    active = server.machine.ssh(f"systemctl is-active {' '.join(UNITS)}", check=False)
    assert active.stdout.split() == ["active"] * len(UNITS), server.journal(*UNITS[:3])
    assert server.healthz() == {
        "status": "ok",
        "database": "ok",
        "revision": server.revisions[0],
    }
    status, body = server.https("/static/site.css")
    assert status == 200 and body.strip()
    redirect = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--resolve",
            f"{DOMAIN}:80:{server.machine.address}",
            f"http://{DOMAIN}/healthz",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert redirect == f"301 https://{DOMAIN}/healthz"


def test_the_worker_runs_a_job_enqueued_through_the_api(server):
    status, body = server.https(
        "/api/notes", "POST", {"title": "on a server", "body": "three words here"}
    )
    assert status == 201, body
    note = json.loads(body)

    assert wait_for_word_count(server, note["id"]) == 3, server.journal(
        f"{SLUG}-worker"
    )


def wait_for_word_count(server: Server, note_id: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = server.https(f"/api/notes/{note_id}")
        assert status == 200, body
        if json.loads(body)["word_count"] is not None:
            return json.loads(body)["word_count"]
        time.sleep(0.5)
    return None


def test_systemd_analyze_security_inside_reports_the_offline_exposure(server):
    for unit in (
        f"{SLUG}-web.service",
        f"{SLUG}-worker.service",
        f"{SLUG}-backup.service",
    ):
        inside = server.machine.ssh(
            f"systemd-analyze security --no-pager {unit}"
        ).stdout
        offline = subprocess.run(
            [
                "systemd-analyze",
                "security",
                "--no-pager",
                "--offline=true",
                str(server.project / "deploy" / "systemd" / unit),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert exposure(inside) == exposure(offline), (
            unit,
            inside[-400:],
            offline[-400:],
        )


def exposure(report: str) -> str:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report)
    assert match, report[-2000:]
    return match.group(1)


def test_the_backup_unit_uploads_an_encrypted_backup_to_s3(server):
    need("age", "age-keygen")
    key = server.work / "age.key"
    if not key.exists():
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = re.search(r"public key: (age1\w+)", key.read_text()).group(1)
    with s3_server(server.machine, server.work) as endpoint:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="napkin",
            aws_secret_access_key="napkin-secret",
        )
        client.create_bucket(Bucket="backups")
        settings = {
            "BACKUP_REMOTE": "offsite:backups/my-app",
            "BACKUP_AGE_RECIPIENT": recipient,
            "RCLONE_CONFIG_OFFSITE_ENDPOINT": endpoint,
            "RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID": "napkin",
            "RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY": "napkin-secret",
        }
        set_env(server, settings)

        started = server.machine.ssh(f"systemctl start {SLUG}-backup", check=False)

        assert started.returncode == 0, server.journal(f"{SLUG}-backup")
        listed = client.list_objects_v2(Bucket="backups", Prefix="my-app/")
        keys = [item["Key"] for item in listed.get("Contents", [])]
        assert keys, server.journal(f"{SLUG}-backup")
        body = client.get_object(Bucket="backups", Key=keys[0])["Body"].read()
    assert body.startswith(b"age-encryption.org/v1")
    plain = subprocess.run(
        ["age", "-d", "-i", str(key)], input=body, capture_output=True, check=True
    ).stdout
    assert b"notes" in plain


def set_env(server: Server, settings: dict[str, str]) -> None:
    """Set lines of the server's env file (/etc/<slug>/env), as an operator edits it."""
    script = "".join(
        f"grep -q '^{k}=' $f && sed -i 's|^{k}=.*|{k}={v}|' $f || echo '{k}={v}' >> $f\n"
        for k, v in settings.items()
    )
    server.machine.ssh(f"set -e; f=/etc/{SLUG}/env\n{script}")


class s3_server:
    """moto's S3 server on the host end of the machine's link (nowhere else)."""

    def __init__(self, machine: machines.Machine, work: Path):
        self.machine, self.log = machine, work / "moto.log"

    def __enter__(self) -> str:
        port, address = free_port(), self.machine.host_address
        moto = Path(sys.executable).parent / "moto_server"
        with self.log.open("a") as out:
            self.process = self.machine.spawn(
                [moto, "-H", address, "-p", str(port)], stdout=out, stderr=out
            )
        wait_for_port(port, address)
        return f"http://{address}:{port}"

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(10)


def test_a_new_revision_deploys_under_load_without_a_failed_request(server):
    revision = server.commit("second")

    with load(server) as results:
        server.deploy(revision)
    server.revisions.append(revision)  # live now, whatever the load saw

    assert results["requests"] > 0, results["output"]
    assert results["errors"] == {}, results["output"] + failed_requests(server)
    assert server.healthz()["revision"] == revision


def failed_requests(server: Server) -> str:
    """nginx's record of the requests that did not get a 2xx, and why."""
    logs = server.machine.ssh(
        "echo '--- access.log, status >= 400'; "
        "awk '$9 >= 400' /var/log/nginx/access.log | tail -n 20; "
        "echo '--- error.log'; tail -n 20 /var/log/nginx/error.log",
        check=False,
    )
    return "\n" + logs.stdout


class load:
    """wrk from the host against https://<domain>/healthz on the machine, until exit.

    wrk takes the name from its URL for SNI and Host, so it runs in a private
    mount namespace whose /etc/hosts maps the domain to the machine: the host's
    own /etc/hosts is never touched.
    """

    def __init__(self, server: Server):
        self.server, self.results = server, {}

    def __enter__(self) -> dict:
        hosts = self.server.work / "hosts"
        hosts.write_text(
            f"127.0.0.1 localhost\n{self.server.machine.address} {DOMAIN}\n"
        )
        script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
        self.process = self.server.machine.spawn(
            [
                "unshare",
                "--mount",
                "sh",
                "-c",
                script,
                "sh",
                str(hosts),
                "wrk",
                "-t2",
                "-c16",
                "-d1h",
                # As long as nginx waits for the app (proxy_read_timeout): a
                # request queued while the app restarts is slow, not failed.
                "--timeout",
                "60s",
                f"https://{DOMAIN}/healthz",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(2)  # a few requests before the deploy starts
        return self.results

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        output, _ = self.process.communicate(timeout=30)
        requests = re.search(r"(\d+) requests in", output)
        errors = {}
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        if non_2xx:
            errors["non-2xx"] = int(non_2xx.group(1))
        socket = re.search(r"Socket errors: (.*)", output)
        if socket:
            errors["socket"] = socket.group(1)
        self.results.update(
            requests=int(requests.group(1)) if requests else 0,
            errors=errors,
            output=output,
        )


def test_a_revision_that_fails_its_health_check_is_rolled_back(server):
    live = server.revisions[-1]

    broken = server.commit("an app that cannot start", machines.break_app)
    # deploy.sh waits HEALTH_TIMEOUT (60 s) for the new revision; 20 s is plenty here.
    result = server.deploy(broken, check=False, env="HEALTH_TIMEOUT=20")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output + server.journal(f"{SLUG}-web.service")
    assert "rolled back" in output, output
    assert server.healthz()["revision"] == live
    machines.git(
        server.project, "revert", "--no-edit", "HEAD"
    )  # later tests commit on top


def test_a_killed_worker_is_restarted_and_the_job_in_flight_completes(server):
    machine = server.machine
    worker = f"{SLUG}-worker.service"
    if server.database == "sqlite":
        before = main_pid(machine, worker)
        machine.ssh(f"kill -9 {before}")
        wait_until(
            lambda: main_pid(machine, worker) not in (0, before),
            60,
            server.journal(worker),
        )
        status, body = server.https(
            "/api/notes", "POST", {"title": "after", "body": "a b"}
        )
        assert status == 201, body
        assert wait_for_word_count(server, json.loads(body)["id"]) == 2
        return
    # Postgres: hold the note's row lock so the job blocks mid-flight, kill -9 the
    # worker, then let go: the job must be run again and finish.
    psql = f"runuser -u postgres -- psql -XAtq -d {SLUG} -c"
    machine.ssh(f"systemctl stop {worker}")
    status, body = server.https(
        "/api/notes", "POST", {"title": "in flight", "body": "one two"}
    )
    assert status == 201, body
    note = json.loads(body)["id"]
    holder = subprocess.Popen(
        [
            "ssh",
            *machine.ssh_options(),
            f"root@{machine.address}",
            (
                f'{psql} "BEGIN; SELECT id FROM notes WHERE id = {note} FOR UPDATE; '
                f'SELECT pg_sleep(600)"'
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        waiting = f"{psql} \"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'\""
        machine.ssh(f"systemctl start {worker}")
        wait_until(
            lambda: machine.ssh(waiting).stdout.strip() != "0",
            60,
            server.journal(worker),
        )
        before = main_pid(machine, worker)
        machine.ssh(f"kill -9 {before}")
        # The dead worker's query would still finish once the lock goes: end it too,
        # as the server does when it notices the client is gone.
        machine.ssh(
            f'{psql} "SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
            f"WHERE (wait_event_type = 'Lock' OR query LIKE '%pg_sleep%') AND pid <> pg_backend_pid()\""
        )
    finally:
        holder.terminate()
        holder.wait(10)
    wait_until(
        lambda: main_pid(machine, worker) not in (0, before), 60, server.journal(worker)
    )

    assert wait_for_word_count(server, note, timeout=300) == 2, server.journal(worker)


def main_pid(machine: machines.Machine, unit: str) -> int:
    return int(machine.ssh(f"systemctl show -P MainPID {unit}").stdout.strip() or 0)


def wait_until(probe, timeout: float, context: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    pytest.fail(f"still waiting after {timeout}s\n{context}")


def test_after_a_reboot_everything_comes_back_by_itself(server):
    server.machine.reboot()

    wait_until(
        lambda: (
            server.machine.ssh(
                "systemctl is-system-running --wait", check=False
            ).stdout.strip()
            in ("running", "degraded")
        ),
        120,
    )
    active = server.machine.ssh(f"systemctl is-active {' '.join(UNITS)}", check=False)
    assert active.stdout.split() == ["active"] * len(UNITS), server.journal(*UNITS[:3])
    assert server.healthz()["revision"] == server.revisions[-1]
