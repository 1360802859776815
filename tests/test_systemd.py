"""Tier 2: the systemd units of every systemd bake verify cleanly and are sandboxed.

`systemd-analyze verify` fails when an Exec path does not exist on this host
(and exits 0 on parse errors), so a copy of the units with their Exec paths
pointed at a stub executable is verified, and its stderr must be empty.
"""

import re
import subprocess

import pytest

from napkin_testing import APPS, bake, combo_id, need

UNITS = (
    "web.service",
    "web.socket",
    "worker.service",
    "backup.service",
    "backup.timer",
)
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    """The units of a systemd bake, copied with Exec paths pointing at a stub."""
    found = {}

    def get(app):
        if app not in found:
            base = tmp_path_factory.mktemp(combo_id(app))
            project = bake(base / "out", *app, deploy="systemd")
            stub = base / "stub"
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
            copy = base / "units"
            copy.mkdir()
            for path in (project / "deploy" / "systemd").iterdir():
                text = re.sub(r"/srv/\w+/current/bin/\w+", str(stub), path.read_text())
                (copy / path.name).write_text(text)
            found[app] = project, copy
        return found[app]

    return get


def analyze(*args, cwd=None):
    need("systemd-analyze")
    return subprocess.run(
        ["systemd-analyze", *args], cwd=cwd, check=False, capture_output=True, text=True
    )


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_the_units_are_there(units, app):
    project, _ = units(app)
    slug = project.name
    names = sorted(p.name for p in (project / "deploy" / "systemd").iterdir())
    assert names == sorted(f"{slug}-{unit}" for unit in UNITS)


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_systemd_analyze_verify_is_silent(units, app):
    _, copy = units(app)
    result = analyze("verify", *sorted(f"./{p.name}" for p in copy.iterdir()), cwd=copy)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("app", APPS, ids=combo_id)
@pytest.mark.parametrize("process", ["web", "worker", "backup"])
def test_exposure_is_at_most_2(units, app, process):
    project, copy = units(app)
    unit = f"./{project.name}-{process}.service"
    result = analyze(
        "security",
        "--offline=true",
        f"--threshold={int(MAX_EXPOSURE * 10)}",
        unit,
        cwd=copy,
    )
    score = re.search(r"Overall exposure level for .*: (\d+\.\d+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert float(score.group(1)) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_units_run_the_bin_entrypoints_as_the_app_user(units, app):
    project, _ = units(app)
    slug = project.name
    for process in ("web", "worker", "backup"):
        text = (
            project / "deploy" / "systemd" / f"{slug}-{process}.service"
        ).read_text()
        assert f"ExecStart=/srv/{slug}/current/bin/{process}\n" in text
        assert f"User={slug}\n" in text
        assert f"EnvironmentFile=/etc/{slug}/env\n" in text


@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_worker_stops_gracefully(units, app):
    project, _ = units(app)
    text = (
        project / "deploy" / "systemd" / f"{project.name}-worker.service"
    ).read_text()
    # Both queues finish running jobs on SIGTERM (bin/worker gives huey
    # SIGTERM as its graceful signal; SIGINT would stop it at once).
    signal = "SIGTERM"
    assert f"KillSignal={signal}\n" in text


def test_backup_timer_is_nightly_persistent_and_spread(units):
    project, _ = units(("django", "sqlite"))
    text = (project / "deploy" / "systemd" / f"{project.name}-backup.timer").read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", text, flags=re.MULTILINE).group(1)
    result = analyze("calendar", "--iterations=2", calendar)
    assert result.returncode == 0, result.stderr
    elapses = re.findall(r"(?:Next elapse|Iter. #\d): \w+ (\S+) (\S+)", result.stdout)
    assert len(elapses) == 2, result.stdout
    # Once a day: two consecutive elapses one day apart, at the same time.
    assert elapses[0][1] == elapses[1][1]
    assert elapses[0][0] != elapses[1][0]
    assert "Persistent=true\n" in text
    assert re.search(r"^RandomizedDelaySec=\S+$", text, flags=re.MULTILINE)


def test_compose_bakes_have_no_units(tmp_path):
    project = bake(tmp_path, deploy="compose")
    assert not (project / "deploy" / "systemd").exists()
