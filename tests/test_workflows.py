"""Tier 2: the generated GitHub Actions workflows, and yamllint on every YAML file.

actionlint (with shellcheck on PATH for the `run:` scripts) and zizmor at its
pedantic persona report nothing for any combination. The deploy step is also
run for real with bash, the way the server test runs it, against a stand-in
`ssh` that records what it was asked to do.
"""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from napkin_testing import COMBOS, combo_id

BIN = Path(sys.executable).parent
SHA = "0123456789abcdef0123456789abcdef01234567"
SECRETS = {
    "DEPLOY_SSH_KEY",
    "DEPLOY_HOST",
    "DEPLOY_USER",
    "DEPLOY_KNOWN_HOSTS",
    "DEPLOY_PORT",
}


def workflow(project: Path, name: str) -> dict:
    return yaml.safe_load((project / ".github/workflows" / name).read_text())


def deploy_step(project: Path) -> dict:
    """The one step the server test extracts: found by its name."""
    steps = workflow(project, "deploy.yml")["jobs"]["deploy"]["steps"]
    [step] = [s for s in steps if s.get("name") == "Deploy over SSH"]
    return step


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_actionlint_finds_nothing(baked, combo):
    project = baked(combo)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    result = subprocess.run(
        [
            BIN / "actionlint",
            "-no-color",
            ".github/workflows/ci.yml",
            ".github/workflows/deploy.yml",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_zizmor_pedantic_finds_nothing(baked, combo):
    result = subprocess.run(
        [
            BIN / "zizmor",
            "--offline",
            "--persona=pedantic",
            "--no-progress",
            "--format=plain",
            ".github/workflows",
        ],
        cwd=baked(combo),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_yamllint_finds_nothing_in_any_yaml_file(baked, combo):
    project = baked(combo)
    files = sorted(
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.suffix in {".yml", ".yaml"} and ".venv" not in p.parts
    )
    assert ".github/workflows/ci.yml" in files
    result = subprocess.run(
        [BIN / "yamllint", "--strict", "--no-warnings", *files],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_ci_is_locked_down_and_pinned(baked, combo):
    project = baked(combo)
    ci = workflow(project, "ci.yml")
    assert ci["permissions"] == {"contents": "read"}
    assert ci["concurrency"]["group"].startswith("ci-")
    for name in ("ci.yml", "deploy.yml"):
        text = (project / ".github/workflows" / name).read_text()
        for uses in re.findall(r"uses: (\S+)(.*)", text):
            ref, comment = uses
            if ref.startswith("$/"):
                continue  # this repository's own reusable workflow
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
            assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), ref
    steps = ci["jobs"]["check"]["steps"]
    checkout = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout and all(s["with"]["persist-credentials"] is False for s in checkout)
    setup_uv = [s for s in steps if s.get("uses", "").startswith("astral-sh/setup-uv@")]
    assert setup_uv[0]["with"]["enable-cache"] is True
    assert any(s.get("run") == "make check" for s in steps)
    services = ci["jobs"]["check"].get("services", {})
    assert ("postgres" in services) == (combo[1] == "postgres")
    if services:
        assert "@sha256:" in services["postgres"]["image"]


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_deploy_runs_after_ci_on_the_default_branch_only(baked, combo):
    project = baked(combo)
    ci = workflow(project, "ci.yml")
    call = ci["jobs"]["deploy"]
    assert call["needs"] == "check"
    assert call["uses"] == "$/.github/workflows/deploy.yml"
    assert "github.event_name == 'push'" in call["if"]
    assert "default_branch" in call["if"]
    deploy = workflow(project, "deploy.yml")
    # PyYAML reads the `on:` key as the boolean True.
    assert set(deploy[True]) == {"workflow_call", "workflow_dispatch"}
    assert deploy["permissions"] == {}
    job = deploy["jobs"]["deploy"]
    assert "default_branch" in job["if"]
    assert job["environment"]["name"] == "production"
    assert job["concurrency"] == {
        "group": "deploy-production",
        "cancel-in-progress": False,
    }


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_deploy_step_takes_secrets_from_env_only(baked, combo):
    step = deploy_step(baked(combo))
    assert set(step["env"]) == SECRETS
    for name, value in step["env"].items():
        assert value == f"${{{{ secrets.{name} }}}}"
    script = step["run"]
    assert "${{" not in script
    assert "StrictHostKeyChecking=yes" in script
    assert "StrictHostKeyChecking=no" not in script


def run_deploy_step(project: Path, tmp_path: Path, **env: str):
    """Run the step's script with bash, as the server test does, ssh stubbed."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    record = tmp_path / "ssh-call"
    ssh = stubs / "ssh"
    ssh.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" > {record}\n'
        "for ((i = 1; i <= $#; i++)); do\n"
        '  case "${!i}" in\n'
        f'  -i) j=$((i + 1)); cp "${{!j}}" {tmp_path}/seen-key ;;\n'
        f'  UserKnownHostsFile=*) cp "${{!i#UserKnownHostsFile=}}" {tmp_path}/seen-known ;;\n'
        "  esac\n"
        "done\n"
    )
    ssh.chmod(ssh.stat().st_mode | stat.S_IEXEC)
    step = deploy_step(project)
    run_env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "GITHUB_SHA": SHA,
        **env,
    }
    result = subprocess.run(
        ["bash", "-c", step["run"]],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    args = record.read_text().splitlines() if record.exists() else None
    return result, args


FULL = {
    "DEPLOY_SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----",
    "DEPLOY_HOST": "203.0.113.7",
    "DEPLOY_USER": "deploy",
    "DEPLOY_KNOWN_HOSTS": "203.0.113.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake",
}


def test_deploy_step_sends_the_commit_with_a_pinned_host_key(baked, tmp_path):
    project = baked(("django", "postgres", "compose"))
    result, args = run_deploy_step(project, tmp_path, **FULL, DEPLOY_PORT="2222")
    assert result.returncode == 0, result.stderr
    assert args[-2:] == ["deploy@203.0.113.7", SHA]
    assert ["-p", "2222"] == args[args.index("-p") : args.index("-p") + 2]
    assert "StrictHostKeyChecking=yes" in args
    assert (tmp_path / "seen-key").read_text() == FULL["DEPLOY_SSH_KEY"] + "\n"
    assert (tmp_path / "seen-known").read_text() == FULL["DEPLOY_KNOWN_HOSTS"] + "\n"
    # The key does not outlive the step.
    assert not any(p.name == "key" for p in tmp_path.rglob("*") if p.parent != tmp_path)


def test_deploy_step_uses_port_22_by_default(baked, tmp_path):
    project = baked(("flask", "sqlite", "systemd"))
    result, args = run_deploy_step(project, tmp_path, **FULL, DEPLOY_PORT="")
    assert result.returncode == 0, result.stderr
    assert ["-p", "22"] == args[args.index("-p") : args.index("-p") + 2]


def test_deploy_step_without_a_server_deploys_nothing(baked, tmp_path):
    project = baked(("fastapi", "sqlite", "compose"))
    result, args = run_deploy_step(project, tmp_path)
    assert result.returncode == 0
    assert "DEPLOY_HOST is not set" in result.stdout
    assert args is None


@pytest.mark.parametrize(
    "missing", ["DEPLOY_SSH_KEY", "DEPLOY_USER", "DEPLOY_KNOWN_HOSTS"]
)
def test_deploy_step_names_a_missing_secret(baked, tmp_path, missing):
    project = baked(("django", "sqlite", "systemd"))
    env = {k: v for k, v in FULL.items() if k != missing}
    result, args = run_deploy_step(project, tmp_path, **env)
    assert result.returncode == 1
    assert f"the {missing} secret is not set" in result.stdout
    assert args is None


def test_deploy_step_refuses_a_bad_commit(baked, tmp_path):
    project = baked(("django", "postgres", "systemd"))
    result, args = run_deploy_step(project, tmp_path, **FULL, GITHUB_SHA="main; reboot")
    assert result.returncode == 1
    assert "GITHUB_SHA is not a commit id" in result.stdout
    assert args is None


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_ci_docs_list_every_secret(baked, combo):
    docs = (baked(combo) / "docs/ci.md").read_text()
    for name in SECRETS:
        assert f"`{name}`" in docs, name
    assert "restrict" in docs and "command=" in docs
    assert "ssh-keygen" in docs and "ssh-keyscan" in docs
