"""Gather static files into STATIC_ROOT for nginx: python -m {{ cookiecutter.project_slug }}.collectstatic"""

import shutil
from pathlib import Path

from .settings import get_settings

SOURCE = Path(__file__).resolve().parent / "static"


def collect(target: Path) -> int:
    """Copy the static files into `target`; return how many there are."""
    shutil.copytree(SOURCE, target, dirs_exist_ok=True)
    return sum(1 for path in SOURCE.rglob("*") if path.is_file())


if __name__ == "__main__":
    target = get_settings().static_dir
    print(f"{collect(target)} static files gathered in {target}")
