"""`paperbot run` as a real process: due subscribers get exactly one digest; SIGTERM stops it,
also in the middle of a send, without losing or repeating a message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import stopping
from bot.store import Store
from tests.conftest import ROOT, SmtpServer, crowd_profiles, hanging_sources
from tests.smtp_faults import FaultServer

pytestmark = pytest.mark.slow

CROWD = 16
"""Subscribers due at once in the stop-while-sending test."""


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def start_worker(env: dict[str, str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """`python -m bot run` of this checkout in its own process, its output in ``log``."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT), **extra}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], env=full, stdout=out, stderr=subprocess.STDOUT
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit code (the worker is killed if it does not stop in time)."""
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_worker_process_sends_once_and_stops_cleanly(
    env: dict[str, str], smtp_server: SmtpServer, profiles_file: Path, tmp_path: Path
) -> None:
    profiles_file.write_text(
        profiles_file.read_text()
        .replace('send_at: "08:00"', 'send_at: "00:00"')
        .replace("America/New_York", "UTC")
    )
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, **smtp_server.env(), PAPERBOT_SWEEP_SECONDS="1")
    try:
        assert wait_for(lambda: len(smtp_server.messages) >= 2, 30), log.read_text()
        time.sleep(2.5)  # a few more sweeps: nothing else may go out
    finally:
        code = stop_worker(worker)
    assert code == 0, log.read_text()
    output = (tmp_path / "worker.log").read_text()
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp_server.messages) == [
        "ada@example.org",
        "grace@example.org",
    ], output
    assert "worker stopped" in output and "Traceback" not in output
    assert "unsubscribe link" not in output, "the unsubscribe settings are set"
    assert f"; delivering by SMTP to {smtp_server.host}:{smtp_server.port} (none)\n" in output


def test_worker_names_where_mail_goes_when_it_starts(env: dict[str, str], tmp_path: Path) -> None:
    """And warns when no unsubscribe setting is set."""
    log = tmp_path / "worker.log"
    no_unsubscribe = dict.fromkeys(
        ("PAPERBOT_BASE_URL", "PAPERBOT_SECRET_KEY", "PAPERBOT_UNSUBSCRIBE_MAILTO"), ""
    )
    worker = start_worker(env, log, PAPERBOT_SWEEP_SECONDS="30", **no_unsubscribe)
    try:
        assert wait_for(lambda: "worker started" in log.read_text(), 30), log.read_text()
    finally:
        code = stop_worker(worker)
    assert code == 0, log.read_text()
    started = next(line for line in log.read_text().splitlines() if "worker started" in line)
    assert started.endswith(
        f"worker started: sweep every 30 s, sources {env['PAPERBOT_SOURCES']}; writing emails "
        f"to the outbox directory {env['PAPERBOT_OUTBOX']}/ (PAPERBOT_SMTP_HOST is not set)"
    )
    warning = (
        "WARNING bot.scheduler: emails carry no unsubscribe link: set PAPERBOT_BASE_URL and "
        "PAPERBOT_SECRET_KEY, or PAPERBOT_UNSUBSCRIBE_MAILTO"
    )
    assert sum(line.endswith(warning) for line in log.read_text().splitlines()) == 1


@pytest.fixture
def crowd(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A profiles file with CROWD subscribers whose digests are all due now."""
    fields = ('    send_at: "00:00"', "    interests:", '      keywords: ["mixture of experts"]')
    path = crowd_profiles(tmp_path / "crowd.yaml", CROWD, *fields)
    return env | {"PAPERBOT_PROFILES": str(path)}


def ledger_counts(env: dict[str, str]) -> dict[str, int]:
    """How many deliveries the ledger has in each state."""
    store = Store(env["PAPERBOT_DATABASE_URL"])
    try:
        counts: dict[str, int] = {}
        for _, status, n in store.ledger.counts():
            counts[status] = counts.get(status, 0) + n
        return counts
    finally:
        store.close()


def worker_until(
    env: dict[str, str], log: Path, condition: Callable[[], bool], linger: float = 0, **extra: str
) -> str:
    """Start a worker, stop it (SIGTERM) ``linger`` seconds after ``condition`` holds, check it
    exited 0, and return its output."""
    worker = start_worker(env, log, **extra)
    try:
        assert wait_for(condition, 30), log.read_text()
        time.sleep(linger)
    finally:
        code = stop_worker(worker)
    assert code == 0, log.read_text()
    return log.read_text()


def test_sigterm_while_sending_finishes_the_messages_in_flight_and_releases_the_rest(
    crowd: dict[str, str], faults: FaultServer, tmp_path: Path
) -> None:
    slow = {f"reader{n}@example.org": ["sleep:0.3"] for n in range(CROWD)}
    faults.handler.data.update(slow)  # each message takes the server 0.3 s to accept
    smtp = faults.env(PAPERBOT_SMTP_CONNECTIONS="2", PAPERBOT_SWEEP_SECONDS="1")
    output = worker_until(
        crowd, tmp_path / "first.log", lambda: len(faults.handler.accepted) >= 2, **smtp
    )
    assert "Traceback" not in output and "CancelledError" not in output, output
    assert "worker stopped" in output
    sent = len(faults.handler.accepted)
    assert sent < CROWD
    # nothing left `sending`: what was being handed over is recorded, the rest released
    assert ledger_counts(crowd) == {"sent": sent, "temp_failed": CROWD - sent}
    store = Store(crowd["PAPERBOT_DATABASE_URL"])
    (sweep,) = [run for run in store.recent_runs() if run.command == "sweep"]
    store.close()
    assert (sweep.status, sweep.summary["stopped"]) == ("stopped", "shutting down")
    assert (sweep.summary["counts"]["sent"], sweep.summary["counts"]["released"]) == (
        sent, CROWD - sent,
    )  # fmt: skip

    faults.handler.data.clear()  # the server answers at once from now on
    second = worker_until(  # lingering for another sweep: nothing else may go out
        crowd, tmp_path / "second.log", lambda: len(faults.handler.accepted) >= CROWD,
        linger=1.5, **smtp,
    )  # fmt: skip
    received = sorted(m["To"].addresses[0].addr_spec for m in faults.handler.received())
    assert received == sorted(f"reader{n}@example.org" for n in range(CROWD))
    assert ledger_counts(crowd) == {"sent": CROWD}
    assert "interrupted run" not in second


def test_sigterm_during_a_stalled_send_releases_what_never_reached_the_server(
    crowd: dict[str, str], faults: FaultServer, tmp_path: Path
) -> None:
    """The server holds every message for longer than a stop waits: the job is cancelled, the
    messages at the server stay `sending`, and the others are given back at once. The next
    worker sends them all: those left `sending` at once too (their process is gone), again with
    their Message-ID."""
    stalled = {f"reader{n}@example.org": ["sleep:20"] for n in range(CROWD)}
    faults.handler.data.update(stalled)
    smtp = faults.env(PAPERBOT_SMTP_CONNECTIONS="4", PAPERBOT_SWEEP_SECONDS="1")
    output = worker_until(
        crowd, tmp_path / "first.log", lambda: len(faults.handler.dropped) >= 4, **smtp
    )
    assert "cancelling it" in output and "Traceback" not in output, output
    assert f"delivery cancelled: released {CROWD - 4} claimed messages" in output, output
    assert output.splitlines()[-1].endswith("worker stopped"), output
    at_server = {m["To"].addresses[0].addr_spec for m in faults.handler.received()}
    assert len(at_server) == 4
    assert ledger_counts(crowd) == {"sending": 4, "temp_failed": CROWD - 4}
    store = Store(crowd["PAPERBOT_DATABASE_URL"])
    sweeps = [(r.status, r.summary) for r in store.recent_runs() if r.command == "sweep"]
    store.close()
    ((state, summary),) = sweeps
    assert (state, summary["stopped"]) == ("stopped", "cancelled at shutdown")
    assert {name: n for name, n in summary["counts"].items() if n} == {"released": CROWD - 4}

    first_ids = {m["To"].addresses[0].addr_spec: m["Message-ID"] for m in faults.handler.received()}
    faults.handler.data.clear()  # the server answers at once from now on
    second = worker_until(
        crowd, tmp_path / "second.log", lambda: ledger_counts(crowd).get("sent") == CROWD, **smtp
    )
    assert ledger_counts(crowd) == {"sent": CROWD}
    assert second.count("(taken over from an interrupted run)") == 4, second
    again = [m for m in faults.handler.received() if m["To"].addresses[0].addr_spec in at_server]
    assert {m["To"].addresses[0].addr_spec: m["Message-ID"] for m in again[4:]} == first_ids


def test_sigterm_during_the_start_up_fetch_stops_at_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A fresh database makes the worker fetch at start-up; a source that hangs (its requests
    go to a proxy that never answers) does not hold up a stop."""
    log = tmp_path / "worker.log"
    with hanging_sources() as (hanging, held):
        worker = start_worker(env, log, PAPERBOT_SOURCES="hf", **hanging)
        try:
            assert wait_for(lambda: held, 30), log.read_text()
            assert "worker started: sweep every" in log.read_text(), "said before the fetch"
            started = time.monotonic()
        finally:
            code = stop_worker(worker)
        assert time.monotonic() - started < 5, log.read_text()
    output = log.read_text()
    assert code == 0, output
    assert "stopping: cancelling the fetch for " in output, output
    assert "worker stopped" in output and "Traceback" not in output, output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    (fetch,) = store.recent_runs()
    store.close()
    assert (fetch.command, fetch.status) == ("fetch", "stopped")


HUNG = """
import asyncio, logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from bot import stopping
stopping.STOP_LIMIT = 4.0
async def main():
    with stopping.watch_signals(asyncio.get_running_loop(), asyncio.Event()):
        print("ready", flush=True)
        time.sleep(60)  # a call that never returns: the loop is blocked
asyncio.run(main())
"""


@pytest.mark.parametrize("signals", [1, 2])
def test_a_worker_blocked_in_a_call_that_never_returns_still_stops(signals: int) -> None:
    """A database that hangs blocks the event loop; the stop signal is still heard: the process
    exits once ``STOP_LIMIT`` has passed, or at once on a second signal."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HUNG], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    started = time.monotonic()
    for _ in range(signals):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    took = time.monotonic() - started
    assert proc.returncode == 1
    if signals == 1:
        assert 4 <= took < 15 and b"still running 4 s after the stop signal" in err, err
    else:
        assert took < 3.5 and b"a second stop signal: exiting now" in err, err


STUCK_THREAD = """
import asyncio, time
from bot import stopping
stopping.STOP_LIMIT = 3.0
async def main():
    stop = asyncio.Event()
    with stopping.watch_signals(asyncio.get_running_loop(), stop):
        asyncio.ensure_future(asyncio.to_thread(time.sleep, 60))  # a database call that hangs
        print("ready", flush=True)
        await stop.wait()
    print("stopped", flush=True)
asyncio.run(main())  # waits for the executor's thread
"""


def test_a_thread_stuck_in_a_call_does_not_keep_a_stopped_worker_alive() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_THREAD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert out == b"stopped\n" and proc.returncode == 1
    assert b"still running 3 s after the stop signal" in err, err


async def test_leaving_the_signal_watch_puts_the_process_back_as_it_was() -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    stop = asyncio.Event()
    with stopping.watch_signals(asyncio.get_running_loop(), stop):
        assert signal.getsignal(signal.SIGINT) is not handlers[signal.SIGINT]
        assert any(t.name == "signals" for t in threading.enumerate())
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert signal.set_wakeup_fd(wakeup) == wakeup
    assert not any(t.name == "signals" for t in threading.enumerate())
    assert not stop.is_set()
