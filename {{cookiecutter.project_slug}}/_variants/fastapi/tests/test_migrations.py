"""Migrations match the models; static files are gathered for nginx."""

import os
import subprocess
import sys

from alembic import command
from alembic.config import Config

from {{ cookiecutter.project_slug }}.settings import ROOT


def test_models_and_migrations_agree():
    config = Config(str(ROOT / "alembic.ini"), attributes={"configure_logger": False})
    command.check(config)


def test_collectstatic_gathers_site_css(tmp_path):
    target = tmp_path / "static"
    env = dict(os.environ, STATIC_ROOT=str(target))
    subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.project_slug }}.collectstatic"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert "body" in (target / "site.css").read_text()
