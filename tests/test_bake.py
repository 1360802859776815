"""Tier 1: every combination bakes into a clean project; every bad answer is refused."""

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from napkin_testing import COMBOS, TEMPLATE, bake, combo_id

# Files that belong to one option only: present when chosen, absent otherwise.
OPTION_FILES = {
    ("framework", "django"): ["manage.py"],
    ("framework", "fastapi"): ["alembic.ini"],
    ("framework", "flask"): ["migrations/alembic.ini"],
    ("deploy", "systemd"): ["deploy/systemd"],
    ("deploy", "compose"): ["Dockerfile", "compose.yaml", ".dockerignore"],
}

# Every project has these, whatever the answers (DESIGN.md).
COMMON = [
    "README.md",
    "pyproject.toml",
    "Makefile",
    ".env.example",
    ".env",
    ".gitignore",
    "bin/web",
    "bin/worker",
    "bin/release",
    "bin/backup",
    "bin/restore",
    "deploy/bootstrap.sh",
    "deploy/deploy.sh",
    ".github/workflows/ci.yml",
    ".github/workflows/deploy.yml",
    "tests",
]

TEXT_SUFFIXES = {
    "",
    ".py",
    ".md",
    ".toml",
    ".yml",
    ".yaml",
    ".conf",
    ".service",
    ".timer",
    ".sh",
    ".ini",
    ".txt",
    ".example",
    ".cfg",
    ".html",
    ".css",
    ".mako",
    ".json",
}

MAKE_TARGETS = {
    "install",
    "dev",
    "test",
    "lint",
    "fmt",
    "migrate",
    "worker",
    "backup",
    "restore",
    "check",
}


def text_files(project: Path):
    for path in sorted(project.rglob("*")):
        if (
            path.is_file()
            and path.suffix in TEXT_SUFFIXES
            and ".venv" not in path.parts
        ):
            yield path


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_bake_leaves_no_template_syntax(baked, combo):
    project = baked(combo)
    for path in text_files(project):
        text = path.read_text()
        assert "cookiecutter" not in text, path
        if path.suffix != ".html":
            assert not re.search(r"\{%|%\}|\{#", text), path


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_bake_has_the_common_files(baked, combo):
    project = baked(combo)
    for name in COMMON:
        assert (project / name).exists(), name
    assert not (project / "_variants").exists()


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_bake_has_only_the_chosen_options(baked, combo):
    project = baked(combo)
    answers = dict(zip(("framework", "database", "deploy"), combo, strict=True))
    for (key, value), names in OPTION_FILES.items():
        for name in names:
            assert (project / name).exists() == (answers[key] == value), name
    pyproject = (project / "pyproject.toml").read_text()
    assert ("procrastinate" in pyproject) == (answers["database"] == "postgres")
    assert ("huey" in pyproject) == (answers["database"] == "sqlite")


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_bake_is_tidy_text(baked, combo):
    project = baked(combo)
    for path in text_files(project):
        text = path.read_text()
        if not text:
            continue
        rel = path.relative_to(project)
        assert text.endswith("\n"), f"{rel}: no newline at end of file"
        assert not text.endswith("\n\n"), f"{rel}: blank lines at end of file"
        assert not text.startswith("\n"), f"{rel}: blank line at start of file"
        for number, line in enumerate(text.splitlines(), 1):
            assert line == line.rstrip(), f"{rel}:{number}: trailing whitespace"
        assert "\n\n\n\n" not in text, f"{rel}: a run of blank lines"
        # Python, and Python blocks in Markdown (ruff formats both), put two
        # blank lines between top-level definitions.
        if path.suffix not in {".py", ".md"}:
            assert "\n\n\n" not in text, f"{rel}: a run of blank lines"


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_bake_passes_ruff(baked, combo):
    project = baked(combo)
    ruff = Path(TEMPLATE / ".venv/bin/ruff")
    for args in (
        ["check", "--no-cache", "."],
        ["format", "--no-cache", "--check", "."],
    ):
        result = subprocess.run(
            [ruff, *args], check=False, cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_bin_scripts_are_executable(baked, combo):
    project = baked(combo)
    for name in ("web", "worker", "release", "backup", "restore"):
        mode = (project / "bin" / name).stat().st_mode
        assert mode & stat.S_IXUSR, f"bin/{name} is not executable"


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_makefile_has_the_same_targets_everywhere(baked, combo):
    makefile = (baked(combo) / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, flags=re.MULTILINE))
    assert targets >= MAKE_TARGETS


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_env_holds_fresh_secrets_and_is_ignored(baked, combo, tmp_path):
    project = baked(combo)
    env = (project / ".env").read_text()
    assert "change-me" not in env
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    assert ".env" in (project / ".gitignore").read_text().split()
    assert "change-me" in (project / ".env.example").read_text()
    secret = re.search(r"^SECRET_KEY=(.+)$", env, flags=re.MULTILINE).group(1)
    assert len(secret) >= 40
    again = (bake(tmp_path, *combo) / ".env").read_text()
    assert secret not in again, "two bakes share a secret"


def test_domain_surrounding_spaces_are_trimmed(tmp_path):
    project = bake(tmp_path, domain_name="  shop.example.org  ")
    assert "ALLOWED_HOSTS=shop.example.org\n" in (project / ".env.example").read_text()


def test_slug_is_derived_from_the_name(tmp_path):
    project = bake(tmp_path, project_name="Acme Billing-Service")
    assert project.name == "acme_billing_service"
    assert (project / "acme_billing_service").is_dir()


BAD_ANSWERS = {
    "slug-uppercase": ({"project_slug": "MyApp"}, "project_slug"),
    "slug-dash": ({"project_slug": "my-app"}, "project_slug"),
    "slug-digit-first": ({"project_slug": "1app"}, "project_slug"),
    "slug-keyword": ({"project_slug": "class"}, "project_slug"),
    "slug-django": ({"project_slug": "django"}, "project_slug"),
    "slug-flask": ({"project_slug": "flask"}, "project_slug"),
    "slug-fastapi": ({"project_slug": "fastapi"}, "project_slug"),
    "slug-test": ({"project_slug": "test"}, "project_slug"),
    "slug-site": ({"project_slug": "site"}, "project_slug"),
    "slug-app": ({"project_slug": "app"}, "project_slug"),
    "slug-tests-dir": ({"project_slug": "tests"}, "project_slug"),
    "slug-stdlib": ({"project_slug": "json"}, "project_slug"),
    "domain-scheme": ({"domain_name": "https://example.com"}, "domain_name"),
    "domain-path": ({"domain_name": "example.com/app"}, "domain_name"),
    "domain-port": ({"domain_name": "example.com:8443"}, "domain_name"),
    "domain-space": ({"domain_name": "exa mple.com"}, "domain_name"),
    "domain-upper": ({"domain_name": "Example.com"}, "domain_name"),
    "domain-no-dot": ({"domain_name": "localhost"}, "domain_name"),
    "domain-quote": ({"domain_name": 'ex"ample.com'}, "domain_name"),
    "email": ({"author_email": "not-an-email"}, "author_email"),
    "email-space": ({"author_email": "a b@example.com"}, "author_email"),
}

# Choice answers are checked by cookiecutter itself before our hook runs: its
# last line names the answer and the allowed values.
BAD_CHOICES = {
    "framework": ("rails", "['django', 'fastapi', 'flask']"),
    "database": ("mysql", "['postgres', 'sqlite']"),
    "deploy": ("kubernetes", "['systemd', 'compose']"),
}


@pytest.mark.parametrize("key", BAD_CHOICES)
def test_unknown_choice_is_refused(tmp_path, key):
    value, allowed = BAD_CHOICES[key]
    result = subprocess.run(  # noqa: PLW1510 (the exit code is what this test checks)
        [
            sys.executable,
            "-m",
            "cookiecutter",
            str(TEMPLATE),
            "--no-input",
            f"{key}={value}",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert not any(tmp_path.iterdir())
    last = result.stderr.strip().splitlines()[-1]
    assert f"{value} provided for choice variable {key}" in last
    assert allowed in last


@pytest.mark.parametrize(
    ("answers", "key"), BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys()
)
def test_bad_answer_is_refused_with_its_name(cookies, capfd, answers, key):
    result = cookies.bake(extra_context=answers)
    assert result.exit_code != 0
    assert result.project_path is None or not result.project_path.exists()
    assert not any(Path(cookies._new_output_dir()).parent.glob("*/*"))
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("napkin: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"napkin: {key} ")


def test_several_bad_answers_each_get_a_line(cookies, capfd):
    result = cookies.bake(
        extra_context={"project_slug": "Bad", "author_email": "nobody"}
    )
    assert result.exit_code != 0
    lines = [
        line
        for line in capfd.readouterr().err.splitlines()
        if line.startswith("napkin: ")
    ]
    assert [line.split()[1] for line in lines] == ["project_slug", "author_email"]
