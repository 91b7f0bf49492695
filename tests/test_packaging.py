"""What an installed (not editable) paperbot reads at run time ships inside the package
(``bot/templates`` is a link to the top-level ``templates/``)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_template_and_sample_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns: list[str] = config["tool"]["setuptools"]["package-data"]["bot"]
    needed = [f"templates/{p.name}" for p in (ROOT / "templates").iterdir()]
    needed += [f"data/{p.name}" for p in (ROOT / "bot" / "data").iterdir()]
    assert needed
    assert [name for name in needed if not any(fnmatch(name, p) for p in patterns)] == []
