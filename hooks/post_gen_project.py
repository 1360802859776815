"""Shape the generated project: keep the chosen options, write `.env`.

Offline and quick: no network, no installs. Tests import the helpers.
"""

import secrets
import shutil
from pathlib import Path

FRAMEWORK = "{{ cookiecutter.framework }}"
DATABASE = "{{ cookiecutter.database }}"
DEPLOY = "{{ cookiecutter.deploy }}"
SLUG = "{{ cookiecutter.project_slug }}"

# Files of one framework or one deploy style live in _variants/<answer>/ and
# are merged over the project root; the other variants are dropped whole.
VARIANTS = (FRAMEWORK, DEPLOY)

# Path (relative to the project root) -> drop it? Files shared by the variants
# but tied to one answer; one table for every option.
DROP: dict[str, bool] = {
    # Django's PostgreSQL backend with a cheaper health check (Django only).
    f"{SLUG}/postgres": DATABASE != "postgres",
}

PLACEHOLDER = "change-me"

# `.env` is for working on this machine; the server gets its own (bootstrap.sh).
DEVELOPMENT = {
    "APP_ENV": "development",
    "DEBUG": "true",
    "ALLOWED_HOSTS": "localhost,127.0.0.1",
}
if DATABASE == "postgres":
    # The local server over its socket, as your own user (README, quick start).
    DEVELOPMENT["DATABASE_URL"] = f"postgresql:///{SLUG}"


def merge_variants(root, chosen):
    """Move the chosen variants' files into place and drop the others."""
    variants = root / "_variants"
    for name in chosen:
        shutil.copytree(variants / name, root, dirs_exist_ok=True)
    shutil.rmtree(variants)


def drop_unchosen(root, table):
    for relative, drop in table.items():
        path = root / relative
        if not drop or not path.exists():
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def render_env(example, overrides, token=lambda: secrets.token_urlsafe(48)):
    """`.env.example` with every placeholder replaced by a fresh secret."""
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            if key in overrides:
                value = overrides[key]
            elif PLACEHOLDER in value:
                value = value.replace(PLACEHOLDER, token())
            line = f"{key}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_env(root):
    env = root / ".env"
    env.write_text(render_env((root / ".env.example").read_text(), DEVELOPMENT))
    env.chmod(0o600)


def main():
    root = Path.cwd()
    merge_variants(root, VARIANTS)
    drop_unchosen(root, DROP)
    write_env(root)
    print(
        f"\nCreated {root.name}/ ({FRAMEWORK}, {DATABASE}, {DEPLOY}).\n"
        "Next:\n"
        f"  cd {root.name}\n"
        "  make install      # virtualenv and dependencies (needs uv)\n"
        "  make migrate      # create the database tables\n"
        "  make dev          # http://127.0.0.1:8000/healthz\n"
        "  make test\n"
        "Secrets are in .env (git-ignored). Then read README.md and docs/.\n"
    )


if __name__ == "__main__":
    main()
