"""`paperbot run` as a real process: due subscribers get exactly one digest; SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SmtpServer

pytestmark = pytest.mark.slow


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_worker_process_sends_once_and_stops_cleanly(
    env: dict[str, str], smtp_server: SmtpServer, profiles_file: Path, tmp_path: Path
) -> None:
    profiles_file.write_text(
        profiles_file.read_text()
        .replace('send_at: "08:00"', 'send_at: "00:00"')
        .replace("America/New_York", "UTC")
    )
    process_env = {**os.environ, **env, **smtp_server.env(), "PAPERBOT_SWEEP_SECONDS": "1"}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=process_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert wait_for(lambda: len(smtp_server.messages) >= 2, 30), (
            tmp_path / "worker.log"
        ).read_text()
        time.sleep(2.5)  # a few more sweeps: nothing else may go out
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    output = (tmp_path / "worker.log").read_text()
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp_server.messages) == [
        "ada@example.org",
        "grace@example.org",
    ], output
    assert "worker stopped" in output and "Traceback" not in output
