"""The deploy workflow's own SSH step, run against a throwaway server (tier 5).

The step's `run:` script and `env:` are read from the generated
`.github/workflows/deploy.yml` (never copied here) and run under bash with the
environment GitHub would give it: the secrets substituted, GITHUB_SHA set. The
server is a fresh machine with its own sshd and host key, provisioned by the
project's bootstrap.sh, with a `deploy` user whose authorized_keys and sudoers
lines are the ones docs/ci.md tells users to write.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import machines
from napkin_testing import bake, need

pytestmark = pytest.mark.slow
# Each server is built once: its tests run in order on one xdist worker.
ON_SYSTEMD = pytest.mark.xdist_group("deploy-ssh-systemd")
ON_COMPOSE = pytest.mark.xdist_group("deploy-ssh-compose")

SLUG = "my_app"
DOMAIN = "example.com"
WORKFLOW = Path(".github/workflows/deploy.yml")
# Expressions the step may use: secrets only (anything else is a finding).
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def deploy_step(project: Path) -> dict:
    """The step of deploy.yml that runs ssh: its `run` script and `env` mapping."""
    workflow = yaml.safe_load((project / WORKFLOW).read_text())
    steps = [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "run" in step and re.search(r"^\s*ssh\b", step["run"], flags=re.MULTILINE)
    ]
    assert len(steps) == 1, (
        f"expected one step running ssh in {WORKFLOW}, found {len(steps)}"
    )
    return steps[0]


def github_env(
    step: dict, secrets: dict[str, str], sha: str, home: Path
) -> dict[str, str]:
    """The environment GitHub gives the step: its `env:` with secrets, and GITHUB_*."""

    def evaluate(match: re.Match) -> str:
        secret = re.fullmatch(r"secrets\.(\w+)", match.group(1))
        assert secret, f"{WORKFLOW}: unexpected expression ${{{{ {match.group(1)} }}}}"
        return secrets.get(secret.group(1), "")  # an unset secret is empty

    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # nothing from the host's ~/.ssh
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
        "RUNNER_TEMP": str(home),
    }
    for name, value in step.get("env", {}).items():
        env[name] = EXPRESSION.sub(evaluate, str(value))
    return env


def run_step(
    step: dict, env: dict[str, str], work: Path
) -> subprocess.CompletedProcess:
    """Run the step's script the way a GitHub runner runs `shell: bash`."""
    assert not EXPRESSION.search(step["run"]), (
        "expressions in run: (template injection)"
    )
    script = work / "step.sh"
    script.write_text(step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def documented_access(project: Path, public_key: str) -> tuple[str, str | None]:
    """The authorized_keys line (with our key) and sudoers line that docs/ci.md gives."""
    docs = (project / "docs" / "ci.md").read_text()
    line = re.search(
        r"^command=.*\brestrict (ssh-ed25519 AAAA\.\.\. .*)$", docs, re.MULTILINE
    )
    assert line, "docs/ci.md shows no restricted authorized_keys line"
    authorized = line.group(0).replace(line.group(1), public_key)
    sudoers = re.search(r"`(deploy ALL=\(root\) NOPASSWD: [^`]+)`", docs)
    return authorized, sudoers.group(1) if sudoers else None


def add_deploy_user(
    machine: machines.Machine, authorized: str, sudoers: str | None
) -> None:
    """What docs/ci.md asks the user to do on the server, done as root over SSH."""
    script = f"""set -eu
id deploy >/dev/null 2>&1 || useradd --create-home --shell /bin/bash deploy
install -d -m 0700 -o deploy -g deploy ~deploy/.ssh
printf '%s\\n' {shlex.quote(authorized)} > ~deploy/.ssh/authorized_keys
chown deploy:deploy ~deploy/.ssh/authorized_keys
chmod 0600 ~deploy/.ssh/authorized_keys
"""
    if sudoers is not None:
        script += f"""printf '%s\\n' {shlex.quote(sudoers)} > /etc/sudoers.d/{SLUG}-deploy
chmod 0440 /etc/sudoers.d/{SLUG}-deploy
visudo -cq -f /etc/sudoers.d/{SLUG}-deploy
"""
    machine.ssh(script)


@dataclass
class Target:
    machine: machines.Machine
    remote: machines.GitRemote
    step: dict
    secrets: dict[str, str]
    work: Path
    cert: Path | None = None

    def run(self, sha: str, **secrets: str) -> subprocess.CompletedProcess:
        home = self.work / "runner-home"
        home.mkdir(exist_ok=True)
        env = github_env(self.step, {**self.secrets, **secrets}, sha, home)
        return run_step(self.step, env, self.work)

    def healthz(self) -> dict:
        status, body = machines.https(self.machine, DOMAIN, "/healthz", self.cert)
        assert status == 200, body
        return json.loads(body)


def make_target(machine, project, work, ci_key) -> tuple[dict, dict]:
    step = deploy_step(project)
    known_hosts = f"{machine.address} {machine.host_key}"
    secrets = {
        "DEPLOY_SSH_KEY": ci_key.private.read_text(),
        "DEPLOY_HOST": machine.address,
        "DEPLOY_USER": "deploy",
        "DEPLOY_KNOWN_HOSTS": known_hosts,
    }
    return step, secrets


# --- systemd --------------------------------------------------------------------


@pytest.fixture(scope="module")
def systemd_target(machine_host, machine_key, tmp_path_factory):
    """flask + SQLite (the quickest to provision), bootstrapped, nothing deployed yet."""
    need("git", "curl")
    work = tmp_path_factory.mktemp("deploy-ssh-systemd")
    project = bake(work / "bake", "flask", "sqlite", "systemd")
    ci_key = machines.SSHKey.generate(work / "ci-key", "deploy_key")
    machine = machines.Machine.boot(key=machine_key)
    try:
        with machines.GitRemote(project, work / "remote", machine, SLUG) as remote:
            remote.commit("first")
            machine.put(project, f"/root/{SLUG}")
            machine.ssh(f"rm -f /root/{SLUG}/.env")
            machine.ssh(
                f"cd /root/{SLUG} && DEPLOY_REPO={remote.url} ./deploy/bootstrap.sh"
            )
            add_deploy_user(machine, *documented_access(project, ci_key.public))
            step, secrets = make_target(machine, project, work, ci_key)
            cert = work / "cert.pem"
            cert.write_text(
                machine.ssh(f"cat /etc/letsencrypt/live/{DOMAIN}/fullchain.pem").stdout
            )
            yield Target(machine, remote, step, secrets, work, cert)
    finally:
        machine.destroy()


@ON_SYSTEMD
def test_a_good_commit_goes_live(systemd_target):
    sha = systemd_target.remote.commit("a good commit")

    result = systemd_target.run(sha)

    assert result.returncode == 0, result.stdout + result.stderr
    assert systemd_target.healthz()["revision"] == sha


@ON_SYSTEMD
def test_a_commit_failing_its_health_check_is_rolled_back(systemd_target):
    live = systemd_target.healthz()["revision"]

    sha = systemd_target.remote.commit("a broken commit", machines.break_app)
    result = systemd_target.run(sha)
    machines.git(systemd_target.remote.project, "revert", "--no-edit", "HEAD")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "rolled back" in output, output
    assert systemd_target.healthz()["revision"] == live


@ON_SYSTEMD
def test_a_wrong_host_key_makes_the_deploy_refuse_to_connect(systemd_target):
    live = systemd_target.healthz()["revision"]
    impostor = machines.SSHKey.generate(systemd_target.work / "impostor", "host")
    wrong = f"{systemd_target.machine.address} {impostor.public.rsplit(' ', 1)[0]}"
    sha = systemd_target.remote.commit("never deployed")

    result = systemd_target.run(sha, DEPLOY_KNOWN_HOSTS=wrong)

    assert result.returncode == 255, result.stdout + result.stderr
    assert "Host key verification failed" in result.stderr
    assert systemd_target.healthz()["revision"] == live


@ON_SYSTEMD
def test_the_deploy_key_can_only_deploy(systemd_target):
    machine = systemd_target.machine
    key = machines.SSHKey(systemd_target.work / "ci-key" / "deploy_key")

    result = machine.ssh("cat /etc/shadow; id", user="deploy", key=key, check=False)

    assert result.returncode != 0
    assert "root:" not in result.stdout and "uid=" not in result.stdout


@ON_SYSTEMD
def test_the_deploy_key_sends_a_commit_id_or_nothing(systemd_target):
    """docs/ci.md: the command accepts SSH_ORIGINAL_COMMAND only if it is a commit id."""
    machine, live = systemd_target.machine, systemd_target.healthz()["revision"]
    key = machines.SSHKey(systemd_target.work / "ci-key" / "deploy_key")

    for request in ("--rollback", "main"):
        result = machine.ssh(request, user="deploy", key=key, check=False)

        assert result.returncode != 0, f"{request!r} was accepted:\n{result.stdout}"
        assert systemd_target.healthz()["revision"] == live


@ON_SYSTEMD
def test_without_deploy_host_nothing_is_deployed(systemd_target):
    result = systemd_target.run("0" * 40, DEPLOY_HOST="")

    assert result.returncode == 0
    assert "nothing deployed" in result.stdout


# --- compose: no Docker engine here, so only the first stage on the server ------


@pytest.fixture(scope="module")
def compose_target(machine_host, machine_key, tmp_path_factory):
    """A machine with the project's clone and the documented deploy user; no Docker."""
    need("git")
    work = tmp_path_factory.mktemp("deploy-ssh-compose")
    project = bake(work / "bake", "fastapi", "postgres", "compose")
    ci_key = machines.SSHKey.generate(work / "ci-key", "deploy_key")
    machine = machines.Machine.boot(key=machine_key)
    try:
        with machines.GitRemote(project, work / "remote", machine, SLUG) as remote:
            remote.commit("first")
            machine.ssh("apt-get update -qq && apt-get install -y -qq git >/dev/null")
            authorized, sudoers = documented_access(project, ci_key.public)
            add_deploy_user(machine, authorized, sudoers)
            # The clone bootstrap.sh would run in, owned by the deploy user, with
            # the .env bootstrap.sh would write; Docker itself cannot run here.
            machine.ssh(
                f"git clone --quiet {remote.url} /srv/{SLUG} && "
                f"cp /srv/{SLUG}/.env.example /srv/{SLUG}/.env && "
                f"chown -R deploy: /srv/{SLUG}"
            )
            step, secrets = make_target(machine, project, work, ci_key)
            yield Target(machine, remote, step, secrets, work)
    finally:
        machine.destroy()


@ON_COMPOSE
def test_compose_the_step_reaches_the_server_and_runs_deploy_sh(compose_target):
    sha = compose_target.remote.commit("a commit")

    result = compose_target.run(sha)

    # deploy.sh ran as `deploy` with the commit id, checked its setup and
    # stopped at the first thing this host lacks: the Docker engine.
    assert result.returncode != 0
    assert "docker is not installed" in result.stderr, result.stdout + result.stderr
