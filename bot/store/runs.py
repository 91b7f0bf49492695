"""The runs table: when each run started and ended and what it did, for ``paperbot status``.

While a run is ``running`` its summary says which process runs it (host and process id) and
when that process last showed it is alive: a thread writes that every ``HEARTBEAT`` seconds
until the run is finished. A run whose process was killed, or died with the database, never
records its end; ``RunRow.lost`` tells such a run from one still going. A run that ended while
the database could not be reached records its end when the next run of its process starts (a
worker); a command about to exit tries again for ``ONE_SHOT_PATIENCE`` instead (``Patience``), and
says in its log what it could not record.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.store.tables import RUNNING, RunRow, as_utc, db_reason, utcnow

log = logging.getLogger(__name__)

HEARTBEAT = 60.0
"""Seconds between two signs of life of a running run (see ``tables.RUN_LEASE``)."""
ONE_SHOT_PATIENCE = 10.0
"""Seconds a command that ends with its run (``paperbot send``, ``fetch``) keeps trying to write
what the database refused (the run's end; what its ledger owes, see ``Ledger.owe``): no later run
of its process will."""

T = TypeVar("T")

_ALIVE = (
    update(RunRow)
    .where(col(RunRow.id).in_(bindparam("ids", expanding=True)), col(RunRow.status) == RUNNING)
    .values(summary=bindparam("summary"))
)


@functools.cache
def this_machine() -> tuple[str, str | None]:
    """Where this process runs, as runs record it: the host name, and the process table its
    process id belongs to (on Linux its PID namespace and the boot of the kernel, None where
    that cannot be told). Containers may share a host name without seeing each other's
    processes, and two machines may have the same host name (and, outside containers, the
    same PID namespace number): the boot id tells machines apart, and boots."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            table: str | None = f"{namespace} boot {boot.read().strip()}"
    except OSError:
        table = None
    return socket.gethostname(), table


def process_exists(pid: int) -> bool:
    """Whether a process with this id runs on this machine (True when that cannot be told)."""
    if os.name != "posix":  # signal 0 only asks on POSIX systems
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    return True


def this_process() -> dict[str, Any]:
    """This process as runs and claimed deliveries record it (see ``tables.process_gone``)."""
    host, table = this_machine()
    return {"host": host, "table": table, "pid": os.getpid()}


def process_name() -> str:
    """This process in a few characters, as the runs table names the process of each run:
    ``host:pid``."""
    process = this_process()
    return f"{process['host']}:{process['pid']}"


def _alive_summary() -> dict[str, Any]:
    """What a running run's summary says: its process, and that it is alive now."""
    return {"process": this_process(), "alive_at": utcnow().isoformat()}


def _not_recorded(run_id: int, status: str, summary: dict[str, Any], exc: Exception) -> str:
    """What the log says of a run whose end could not be recorded: the run, how it ended, why
    it was not written, and what ``paperbot status`` shows of it instead."""
    counts = " ".join(f"{k} {n}" for k, n in summary.get("counts", {}).items() if n)
    how = f"{status}{f' ({counts})' if counts else ''}"
    return (
        f"the end of run {run_id} ({process_name()}) was not recorded: it ended {how}, but the "
        f"database refused to record it: {db_reason(exc)}; paperbot status shows the run "
        "interrupted once this process has ended, with the messages it recorded sent"
    )


def _stored(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as JSON stores it (dates and other values as strings)."""
    stored: dict[str, Any] = json.loads(json.dumps(summary, default=str))
    return stored


class Patience:
    """How long a process about to exit keeps trying the writes the database refuses: for
    ``seconds`` from the first refusal, shared by every write tried with it after that, so that
    the process waits that long at most in all, however many writes it has left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline: float | None = None

    def keep_trying(self, write: Callable[[], T]) -> T:
        """What ``write()`` returns, tried again while it raises (pauses of a quarter of a
        second, twice as long each time, up to 2 s) until the next try would come after the
        deadline: then its error is raised. Once that deadline has passed, each write is
        tried once."""
        pause = 0.25
        while True:
            try:
                return write()
            except Exception:
                if self._deadline is None:
                    self._deadline = time.monotonic() + self.seconds
                if time.monotonic() + pause > self._deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 2.0)


@dataclass
class RunRecord:
    """How a run in progress will be recorded when it ends: ``error`` unless it says otherwise."""

    status: str = "error"
    summary: dict[str, Any] = field(default_factory=dict)
    kept: bool = True
    """False for a run that did nothing worth showing: its row is deleted when it ends."""


class RunLog:
    """Records runs; keeps showing that the runs of this process that are not finished are alive."""

    heartbeat = HEARTBEAT

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._running: set[int] = set()
        self._changed = threading.Condition()
        self._beating: threading.Thread | None = None
        self._unrecorded: dict[int, tuple[str, dict[str, Any], bool, datetime]] = {}
        """The ends of runs that could not be written (the database was away), by run id."""

    def session(self) -> Session:
        """A new session (callers use it as a context manager)."""
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def run(
        self, command: str, started_at: datetime | None = None, *, patience: Patience | None = None
    ) -> Iterator[RunRecord]:
        """Record a run around the block: ``running`` while it runs, then as the record the
        block filled in says (``error`` when it raised before saying otherwise). ``patience``:
        see ``finish_run``."""
        run_id = self.start_run(command, started_at)
        record = RunRecord()
        try:
            yield record
        finally:
            self.finish_run(
                run_id, record.status, record.summary, kept=record.kept, patience=patience
            )

    def start_run(self, command: str, started_at: datetime | None = None) -> int:
        """Record the start of a run (now, unless given); return its id. The ends of this
        process's runs that could not be recorded are recorded first."""
        for run_id, (status, summary, kept, finished_at) in list(self._unrecorded.items()):
            self._write_end(run_id, status, summary, kept, finished_at)
            del self._unrecorded[run_id]
        with self.session() as db:
            row = RunRow(
                command=command, started_at=as_utc(started_at or utcnow()),
                process=process_name(), summary=_alive_summary(),
            )  # fmt: skip
            db.add(row)
            db.commit()
            assert row.id is not None
        with self._changed:
            self._running.add(row.id)
            if self._beating is None:
                self._beating = threading.Thread(target=self._beat, name="runs-alive", daemon=True)
                self._beating.start()
        return row.id

    def finish_run(
        self,
        run_id: int,
        status: str,
        summary: dict[str, Any],
        *,
        kept: bool = True,
        patience: Patience | None = None,
    ) -> None:
        """Record how a run ended and what it did; delete the record of a run that did nothing
        worth showing (not ``kept``). When the database refuses, it is tried again with
        ``patience`` (a process about to exit: ``ONE_SHOT_PATIENCE``), else not; an end still
        not written is kept for the next run of this process to record, and the error raised.
        A process with ``patience`` has no next run: the log says what was not recorded."""
        with self._changed:
            self._running.discard(run_id)
            self._changed.notify_all()
        finished_at = utcnow()
        try:
            (patience or Patience(0)).keep_trying(
                lambda: self._write_end(run_id, status, summary, kept, finished_at)
            )
        except Exception as exc:  # the database is away: the next run that starts records it
            self._unrecorded[run_id] = (status, summary, kept, finished_at)
            if patience is not None:
                log.error("%s", _not_recorded(run_id, status, summary, exc))
            raise

    @property
    def unrecorded(self) -> list[int]:
        """The runs of this process whose end the database refused, not recorded since."""
        return sorted(self._unrecorded)

    def _write_end(
        self, run_id: int, status: str, summary: dict[str, Any], kept: bool, finished_at: datetime
    ) -> None:
        with self.session() as db:
            row = db.get(RunRow, run_id)
            if row is not None and not kept:
                db.delete(row)
            elif row is not None:
                row.status, row.finished_at = status, as_utc(finished_at)
                row.summary = _stored(summary)
                db.add(row)
            db.commit()

    def stop_heartbeat(self) -> None:
        """Stop showing this process's unfinished runs alive (the store is closing)."""
        with self._changed:
            self._running.clear()
            self._changed.notify_all()

    def recent_runs(
        self, limit: int = 10, status: str | None = None, command: str | None = None
    ) -> list[RunRow]:
        """The latest runs (of that ``status`` and ``command`` if given), newest first."""
        with self.session() as db:
            query = select(RunRow).order_by(col(RunRow.id).desc()).limit(limit)
            if status is not None:
                query = query.where(col(RunRow.status) == status)
            if command is not None:
                query = query.where(col(RunRow.command) == command)
            return list(db.exec(query).all())

    def show_alive(self, run_ids: Iterable[int]) -> None:
        """Record that these runs of this process are alive now (finished ones stay as they are)."""
        with self.engine.begin() as db:
            db.execute(_ALIVE, {"ids": list(run_ids), "summary": _alive_summary()})

    def _beat(self) -> None:
        """Show the unfinished runs alive every ``heartbeat`` seconds; end once none is left."""
        while True:
            with self._changed:
                if self._changed.wait_for(lambda: not self._running, self.heartbeat):
                    self._beating = None
                    return
                running = sorted(self._running)
            try:
                self.show_alive(running)
            except Exception as exc:  # the database is away: the next beat tries again
                log.debug("could not show runs %s alive: %s", running, exc)
