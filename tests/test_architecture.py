"""The import rules that keep the core pure and each concern in one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
IO_LIBRARIES = {"sqlmodel", "sqlalchemy", "httpx", "aiosmtplib", "apscheduler", "jinja2", "typer"}
PURE = [
    "models.py", "profiles", "message.py", "mime.py", "matching", "errors.py", "schedule.py",
    "alerts.py", "text.py", "smtp.py", "urls.py", "refusals.py",
]  # fmt: skip


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(
                node.module.split(".")[0] if not node.module.startswith("bot.") else node.module
            )
    return found


def modules(*names: str) -> list[Path]:
    paths: list[Path] = []
    for name in names:
        target = BOT / name
        paths += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return paths


@pytest.mark.parametrize("path", modules(*PURE), ids=lambda p: str(p.relative_to(BOT)))
def test_pure_modules_do_no_io(path: Path) -> None:
    assert not imports_of(path) & IO_LIBRARIES


def test_the_processes_that_compose_messages_start_without_the_matchers_libraries() -> None:
    """A worker composing messages imports ``bot.composer`` as it starts, while the run waits
    for it: scipy and numpy alone would double that time."""
    code = "import sys, bot.composer; print(sorted({'scipy', 'numpy', 'sqlalchemy'} & set(sys.modules)))"
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=BOT.parent
    )
    assert imported.stdout.strip() == "[]"


def test_only_the_store_talks_to_the_database() -> None:
    offenders = [
        str(p.relative_to(BOT))
        for p in BOT.rglob("*.py")
        if imports_of(p) & {"sqlmodel", "sqlalchemy"} and "store" not in p.parts
    ]
    assert offenders == []


def test_only_the_cli_reads_argv() -> None:
    offenders = [
        str(p.relative_to(BOT))
        for p in BOT.rglob("*.py")
        if "sys.argv" in p.read_text() and "cli" not in p.parts and p.name != "__main__.py"
    ]
    assert offenders == []


def test_only_the_cli_reads_the_environment_directly() -> None:
    offenders = [
        str(p.relative_to(BOT))
        for p in BOT.rglob("*.py")
        if "os.environ" in p.read_text() and "cli" not in p.parts
    ]
    assert offenders == []


def test_core_does_not_import_the_shell() -> None:
    shell = {"bot.cli", "bot.pipeline", "bot.scheduler", "bot.store", "bot.mailer"}
    for path in modules(*PURE):
        assert not imports_of(path) & shell, path
