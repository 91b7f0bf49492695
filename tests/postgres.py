"""A throwaway PostgreSQL server for the tests, started from the machine's server binaries."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

BIN_DIRS = sorted(
    Path("/usr/lib/postgresql").glob("*/bin"), key=lambda d: d.parent.name, reverse=True
)
"""Debian's server binaries, newest version first."""


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((str(d / name) for d in BIN_DIRS if (d / name).exists()), None)


def _as_postgres(args: list[str]) -> list[str]:
    """initdb refuses to run as root: run server commands as the ``postgres`` user when root."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL to a fresh PostgreSQL database; skipped with the reason when no server can start."""
    if url := os.environ.get("PAPERBOT_TEST_POSTGRES_URL"):
        yield url
        return
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    try:
        __import__("psycopg")
    except ImportError:
        pytest.skip("psycopg is not installed (pip install '.[postgres]')")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
    base = Path(tempfile.mkdtemp(prefix="paperbot-pg-"))
    data, port = base / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "-A", "trust"]),
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {base} -h 127.0.0.1 -F"
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(base / "log"), "start"]),
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)
