"""`paperbot send` killed mid-run, and two senders at once: nobody skipped, nothing sent twice
beyond the messages in flight at a kill (and those with the same Message-ID)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.delivery import UNRECORDED
from bot.store import Store
from bot.store.tables import Delivery, SubscriberRow
from tests.conftest import ROOT, crowd_profiles, hanging_sources, run_cli
from tests.smtp_faults import FaultServer

STOP_LIMIT = 10  # a busy machine can take seconds to stop cleanly; no test waits it out but one
PYTHON = [sys.executable, "-c", f"from bot import stopping; stopping.STOP_LIMIT = {STOP_LIMIT}; "
          "from bot.cli import main; main()"]  # fmt: skip
"""``python -m bot``, exiting sooner after a stop signal that does not take effect."""
SUBSCRIBERS = 300
CONNECTIONS = 4
KILLS = 3


@pytest.fixture
def crowd(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A profiles file with SUBSCRIBERS people who all get a digest."""
    fields = ("    interests:", '      keywords: ["mixture of experts", "diffusion model"]')
    path = crowd_profiles(tmp_path / "crowd.yaml", SUBSCRIBERS, *fields)
    return env | {"PAPERBOT_PROFILES": str(path)}


def start(
    env: dict[str, str], server: FaultServer, group: bool = False, **extra: str
) -> subprocess.Popen[bytes]:
    """`python -m bot send` in its own process (and process group if ``group``); its output goes
    to ``send-<time>.log``."""
    full = os.environ | env | server.env(**extra) | {"PAPERBOT_SMTP_CONNECTIONS": str(CONNECTIONS)}
    with open(f"send-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(
            [*PYTHON, "send", "--date", "2026-11-25"],
            env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=group,
        )  # fmt: skip


def logs() -> str:
    """Everything the send processes printed (the env fixture runs them in tmp_path)."""
    return "\n".join(p.read_text() for p in sorted(Path().glob("send-*.log")))


def by_recipient(server: FaultServer) -> dict[str, list[str]]:
    """Message-IDs each recipient received (data that reached the server)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for message in server.handler.received():
        seen[message["To"].addresses[0].addr_spec].append(str(message["Message-ID"]))
    return seen


def check_ledger_agrees(env: dict[str, str], seen: dict[str, list[str]]) -> None:
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.ledger.counts() == [(store.ledger.counts()[0][0], "sent", SUBSCRIBERS)]
    with store.session() as db:
        rows = db.exec(select(SubscriberRow.email, Delivery.message_id).join(Delivery)).all()
    assert {email: {mid} for email, mid in rows} == {e: set(ids) for e, ids in seen.items()}


def wait_for_progress(server: FaultServer, before: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while len(server.handler.received()) <= before and proc.poll() is None:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)


@pytest.mark.parametrize("group", [False, True], ids=["process", "process group"])
def test_sigterm_stops_a_send_cleanly_and_the_next_send_finishes_it(
    crowd: dict[str, str], faults: FaultServer, group: bool
) -> None:
    """What was being sent is recorded, the rest given back at once (none left `sending` for
    its lease), and the next run sends exactly those. A service manager signals the whole
    process group, the workers composing messages included: the send stops the same way."""
    faults.handler.data.update(
        {f"reader{n}@example.org": ["sleep:0.1"] for n in range(SUBSCRIBERS)}
    )
    proc = start(crowd, faults, group)
    wait_for_progress(faults, CONNECTIONS, proc)
    if group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 1, logs()
    assert "Stopping: the messages being sent finish" in logs() and "Traceback" not in logs()
    assert "Stopped: shutting down" in logs()
    store = Store(crowd["PAPERBOT_DATABASE_URL"])
    sent = len(faults.handler.received())
    states = {state: n for _, state, n in store.ledger.counts()}
    assert set(states) == {"sent", "temp_failed"} and states["sent"] == sent, states
    faults.handler.data.clear()
    again = start(crowd, faults)
    assert again.wait(timeout=60) == 0, logs()
    seen = by_recipient(faults)
    assert all(len(ids) == 1 for ids in seen.values()) and len(seen) == SUBSCRIBERS
    check_ledger_agrees(crowd, seen)


@contextmanager
def stuck_source(kind: str, folder: Path) -> Iterator[tuple[dict[str, str], Callable[[], bool]]]:
    """Settings whose one source never answers, and whether a fetch waits for it yet: ``hf``
    through a proxy that holds every request, ``file`` a FIFO held open that nobody writes."""
    if kind == "hf":
        with hanging_sources() as (hanging, held):
            yield hanging | {"PAPERBOT_SOURCES": "hf"}, lambda: bool(held)
        return
    fifo = folder / "papers.fifo"
    os.mkfifo(fifo)
    writers: list[int] = []

    def reading() -> bool:
        if not writers:
            try:  # succeeds once a reader has opened the FIFO
                writers.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
        return bool(writers)

    try:
        yield {"PAPERBOT_SOURCES": f"file:{fifo}"}, reading
    finally:
        for writer in writers:
            os.close(writer)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["hf", "file"])
def test_a_stop_while_the_papers_are_fetched_ends_the_send_at_once(
    env: dict[str, str], faults: FaultServer, tmp_path: Path, source: str
) -> None:
    """A source that does not answer (a web source retried for longer than the stop limit, a
    file that never gives its lines) is not waited for once a stop comes: the fetch is
    cancelled, the run recorded stopped, nothing sent, and the next send sends every digest."""
    with stuck_source(source, tmp_path) as (stuck, waiting):
        proc = start(env, faults, **stuck)
        deadline = time.monotonic() + 30
        while not waiting():  # the fetch is waiting for the source
            assert proc.poll() is None and time.monotonic() < deadline, logs()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1, logs()
    assert "Stopping before anything is sent; signal again" in logs(), logs()
    assert "Stopped: shutting down before any digest was sent" in logs(), logs()
    assert "still running" not in logs() and "Traceback" not in logs(), logs()
    code, output = run_cli(env, "status", "--format", "json")
    assert code == 0, output
    (run,) = json.loads(output)["runs"]
    assert (run["command"], run["status"]) == ("send", "stopped"), run
    assert run["stopped"] == "shutting down before any digest was sent"
    assert faults.handler.received() == []
    assert Store(env["PAPERBOT_DATABASE_URL"]).ledger.counts() == []
    again = start(env, faults)
    assert again.wait(timeout=60) == 0, logs()
    assert len(faults.handler.received()) == 2


@pytest.mark.slow
def test_killed_sends_then_a_full_run_deliver_everyone_once(
    crowd: dict[str, str], faults: FaultServer
) -> None:
    """Each run takes over at once what the killed one left ``sending`` (its process is gone):
    it does not wait out the leases (5 minutes)."""
    rng = random.Random(20261125)
    for _ in range(KILLS):
        proc = start(crowd, faults)
        wait_for_progress(faults, len(faults.handler.received()), proc)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = start(crowd, faults)
    assert final.wait(timeout=60) == 0, logs()
    assert "being sent by another run" not in logs(), logs()
    seen = by_recipient(faults)
    assert len(seen) == SUBSCRIBERS, "nobody skipped"
    duplicates = sum(len(ids) - 1 for ids in seen.values())
    assert duplicates <= (CONNECTIONS + UNRECORDED) * KILLS, "only messages in flight at a kill"
    assert all(len(set(ids)) == 1 for ids in seen.values()), "a resend keeps its Message-ID"
    check_ledger_agrees(crowd, seen)


@pytest.mark.slow
def test_two_senders_at_once_send_each_digest_once(
    crowd: dict[str, str], faults: FaultServer
) -> None:
    procs = [start(crowd, faults), start(crowd, faults)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0], logs()
    seen = by_recipient(faults)
    assert len(seen) == SUBSCRIBERS
    assert all(len(ids) == 1 for ids in seen.values()), "no duplicates"
    check_ledger_agrees(crowd, seen)


def sending_data(env: dict[str, str], server: FaultServer) -> subprocess.Popen[bytes]:
    """A send started, once the server has been sent a message's data."""
    proc = start(env, server)
    deadline = time.monotonic() + 30
    while server.handler.commands["DATA"] == 0:
        assert proc.poll() is None and time.monotonic() < deadline, logs()
        time.sleep(0.01)
    return proc


def test_a_send_that_cannot_stop_exits_after_the_stop_limit(
    env: dict[str, str], faults: FaultServer
) -> None:
    """A message the server does not answer keeps a stopping send waiting; it exits once the
    stop limit has passed, and the message is sent again after its lease, as after a crash."""
    faults.handler.data["ada@example.org"] = ["sleep:60"]
    proc = sending_data(env, faults)
    proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert proc.wait(timeout=30) == 1, logs()
    assert STOP_LIMIT <= time.monotonic() - stopped < STOP_LIMIT + 10
    assert f"still running {STOP_LIMIT} s after the stop signal" in logs(), logs()
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert ("sending", 1) in [(state, n) for _, state, n in store.ledger.counts()]


@pytest.mark.slow
def test_a_killed_send_is_shown_interrupted(env: dict[str, str], faults: FaultServer) -> None:
    faults.handler.data["ada@example.org"] = ["sleep:20"]  # the run is still sending her digest
    proc = sending_data(env, faults)
    ledger = Store(env["PAPERBOT_DATABASE_URL"]).ledger
    deadline = time.monotonic() + 20
    while not (sent := sum(n for _, state, n in ledger.counts() if state == "sent")):
        assert proc.poll() is None and time.monotonic() < deadline, logs()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    code, output = run_cli(env, "status", "--format", "json")
    assert code == 0, output
    (run,) = json.loads(output)["runs"]
    assert (run["command"], run["status"], run["finished"]) == ("send", "interrupted", None)
    assert run["stopped"] == (
        f"its process ({proc.pid} on {socket.gethostname()}) is gone and never recorded the "
        "run's end (killed, or the database refused it)"
    )
    sent = sum(n for _, state, n in ledger.counts() if state == "sent")  # more, since
    assert run["counts"] == {"sent": sent}, "what it sent before the kill, from the ledger"
    left = json.loads(output)["upcoming"]  # the next run sends them: no lease to wait out
    assert "ada@example.org" in {row["email"] for row in left}, left
    assert all(row["status"] == "sending" for row in left), left
    assert all(datetime.fromisoformat(row["next_attempt"]) <= datetime.now(UTC) for row in left)


SLOW_IMPORT = """
import importlib.abc, pathlib, runpy, sys, time

class Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "bot.cli.app":
            pathlib.Path("importing").touch()
            time.sleep(60)

sys.meta_path.insert(0, Slow())
runpy.run_module("bot", run_name="__main__")
"""
"""``python -m bot``, its import of the command line taking a minute (and saying when it began)."""


@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)]
)
def test_a_stop_signal_while_the_command_line_is_imported_ends_it_quietly(
    env: dict[str, str], stop: signal.Signals, code: int
) -> None:
    """A stop signal that comes before the command line is imported (a second or more on a busy
    machine) ends it as one that comes before the command's own handling does, printing
    nothing: a Ctrl-C with exit code 130, a SIGTERM by the signal itself (which a shell shows
    as 143, and a service manager counts as a clean stop)."""
    full = os.environ | env | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_IMPORT, "send"],
        env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not Path("importing").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(stop)
    output, errors = proc.communicate(timeout=30)
    assert proc.returncode == code, errors.decode()
    assert (output, errors) == (b"", b"")
