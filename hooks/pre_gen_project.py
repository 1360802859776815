"""Validate the answers before anything is written.

Each bad answer prints one line naming the answer and what is allowed, and
generation stops with no output directory. Tests import `problems()`.
"""

import json
import keyword
import re
import sys

# Rendered by cookiecutter; JSON inside a raw string survives any answer text.
ANSWERS = r"""{{ cookiecutter | tojson }}"""

CHOICES = {
    "framework": ("django", "fastapi", "flask"),
    "database": ("postgres", "sqlite"),
    "deploy": ("systemd", "compose"),
}

# Top-level names the generated project imports or keeps at its root: a
# package with one of these names would shadow it or collide with a directory.
# Kept compact: one name per line would make this list 30 lines long.
# fmt: off
TAKEN = {
    "alembic", "app", "bin", "conftest", "deploy", "django", "docs", "environ",
    "fastapi", "flask", "flask_migrate", "flask_sqlalchemy", "gunicorn",
    "huey", "httpx", "migrations", "procrastinate", "psycopg", "psycopg_pool",
    "pydantic", "pydantic_settings", "pytest", "sqlalchemy", "starlette",
    "static", "staticfiles", "test", "tests", "uvicorn", "werkzeug",
}
# fmt: on

SLUG = re.compile(r"[a-z][a-z0-9_]*")
LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}")


def slug_problem(slug):
    if not SLUG.fullmatch(slug):
        return (
            f"project_slug {slug!r} is not a lowercase Python identifier "
            "(a-z first, then a-z, 0-9 or _)"
        )
    if keyword.iskeyword(slug) or slug in TAKEN or slug in sys.stdlib_module_names:
        return (
            f"project_slug {slug!r} would shadow a module or directory the project "
            "uses; choose another name"
        )
    return None


def domain_problem(domain):
    domain = domain.strip()
    labels = domain.split(".")
    if (
        len(domain) > 253
        or len(labels) < 2
        or not all(LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return (
            f"domain_name {domain!r} is not a bare lowercase host name such as "
            "app.example.com (no scheme, path, port, spaces or upper case)"
        )
    return None


def email_problem(email):
    if not EMAIL.fullmatch(email):
        return f"author_email {email!r} is not an email address such as you@example.com"
    return None


def choice_problem(key, value):
    if value not in CHOICES[key]:
        return f"{key} {value!r} is not one of: {', '.join(CHOICES[key])}"
    return None


def problems(answers):
    found = [
        slug_problem(answers["project_slug"]),
        domain_problem(answers["domain_name"]),
        email_problem(answers["author_email"]),
        *(choice_problem(key, answers[key]) for key in CHOICES),
    ]
    return [problem for problem in found if problem]


if __name__ == "__main__":
    errors = problems(json.loads(ANSWERS))
    for error in errors:
        print(f"napkin: {error}", file=sys.stderr)
    sys.exit(1 if errors else 0)
