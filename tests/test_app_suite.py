"""Tier 3: each framework x database passes its own `make check` on a real database.

`make check` is what a developer and the generated CI run: ruff, the check that
models and migrations agree, and the project's own pytest suite.
"""

import subprocess

import pytest

from napkin_testing import APPS, bake, combo_id, need, project_env, project_venv


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS, ids=combo_id)
def test_generated_project_passes_its_own_checks(app, tmp_path, request):
    need("make")
    framework, database = app
    project = bake(tmp_path / "out", framework, database)
    venv = project_venv(project)
    if database == "postgres":
        server = request.getfixturevalue("postgres")
        url = server.create_database(f"suite_{framework}")
    else:
        url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    env = project_env(project, venv, DATABASE_URL=url, UV_NO_SYNC="1")
    result = subprocess.run(
        ["make", "check"],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout
