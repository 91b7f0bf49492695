"""Database tables and the engine factory (SQLite by default, PostgreSQL when configured)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event, inspect, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Field, SQLModel, create_engine

from bot.models import Paper

_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*):[^@\s]*@")


def db_reason(exc: BaseException) -> str:
    """The driver's own message for a database error: its first line (the rest is hints), with
    any password in a URL it quotes hidden."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return _PASSWORD.sub(r"\1:***@", lines[0]) if lines else type(cause).__name__


BUSY_SECONDS = 30
"""How long a SQLite connection waits for another to let go of the file."""

SENDING, SENT, TEMP_FAILED, PERM_FAILED, SKIPPED = (
    "sending", "sent", "temp_failed", "perm_failed", "skipped"
)  # fmt: skip
STATES = (SENDING, SENT, TEMP_FAILED, PERM_FAILED, SKIPPED)
FINAL_STATES = (SENT, SKIPPED, PERM_FAILED)
RUNNING = "running"
"""A run's status until it records how it ended."""
PAUSED = "paused"
"""The status of a sweep that sent nothing, email delivery being paused: it counts the due
digests held back (see ``RunRow.held``)."""
RUN_LEASE = timedelta(minutes=5)
"""How long a running run may show no sign of life (see ``bot.store.runs``) before it counts as
interrupted."""
STATE_MEANING = {
    SENT: "already sent", SKIPPED: "already skipped", PERM_FAILED: "failed permanently",
    SENDING: "being sent by another run", TEMP_FAILED: "waiting for its next retry",
}  # fmt: skip
IN_LIST_LIMIT = 5000  # ids bound in one statement at most (databases cap bound values)
OUTCOME_UNKNOWN = "outcome unknown"
"""How the error of a message failed for good begins when it may have reached its recipient
(see ``Delivery.maybe_sent``)."""


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, as the database stores it."""
    return moment.astimezone(UTC)


class PaperRow(SQLModel, table=True):
    __tablename__ = "papers"
    id: str = Field(primary_key=True)
    title: str
    abstract: str
    authors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    url: str | None = None
    pdf_url: str | None = None
    published: datetime | None = None
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    upvotes: int | None = None
    comments: int | None = None
    hf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    ai_summary: str | None = None
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source: str = ""
    list_date: date = Field(index=True)
    first_seen: datetime


class ListRow(SQLModel, table=True):
    """A day's list as last stored: how many papers it held, and when. A paper's row keeps the
    date of the first list that carried it, so a list whose papers were all stored from an
    earlier day's list (arXiv and file sources list the same papers on two days) leaves no
    paper of its own date: this row says it was stored all the same."""

    __tablename__ = "lists"
    list_date: date = Field(primary_key=True)
    papers: int
    stored_at: datetime


class SubscriberRow(SQLModel, table=True):
    __tablename__ = "subscribers"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True)
    profile: str
    active: bool = True
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None = None


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("subscriber_id", "kind", "digest_date", "ref"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    kind: str = "digest"
    digest_date: date = Field(index=True)
    ref: str = ""
    status: str = Field(index=True)
    message_id: str | None = None
    paper_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    last_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    claimed_by: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    """The process that claimed the row last (host, process table, pid; see ``process_gone``)."""
    maybe_sent: bool | None = None
    """True once a message of the row may have reached its recipient unrecorded (the connection
    was lost after its data, or the run sending it died): whatever becomes of the row, no later
    digest carries its papers again (see ``bot.candidates.Unsent``)."""
    resent_from: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    """While a forced resend of a sent digest is under way, the message that went before it
    (``message_id``, ``paper_ids``): the row becomes that again should the resend not go, even
    in a run that took it over after a crash (see ``Ledger._finish``)."""
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None

    @property
    def next_try(self) -> datetime | None:
        """When the row is tried again: a retry's time, or the end of a ``sending`` lease."""
        return self.lease_until if self.status == SENDING else self.next_attempt_at

    def meaning(self) -> str:
        """What the row's state means to a run that finds it (``STATE_MEANING``); for a
        ``sending`` row, also when it is sent again if no run is sending it (its run was
        interrupted, or it waits out a backoff after an unknown outcome)."""
        text = STATE_MEANING.get(self.status, self.status)
        if self.status == SENDING and self.lease_until is not None:
            when = f"{as_utc(self.lease_until):%Y-%m-%d %H:%M:%S} UTC"
            text += f" (if none is, it is sent again after {when})"
        return text

    def abandoned(self, now: datetime) -> bool:
        """``sending`` with an expired lease: its sender crashed or lost the connection."""
        return (
            self.status == SENDING and self.lease_until is not None
            and self.lease_until < as_utc(now)
        )  # fmt: skip

    def orphaned(self, here: tuple[str, str | None], exists: Callable[[int], bool]) -> bool:
        """``sending``, and the process that claimed it is gone (killed, or it ended with the
        outcome unknown): it can be sent again at once, without waiting out its lease."""
        return self.status == SENDING and process_gone(self.claimed_by, here, exists)

    def left_behind(
        self, now: datetime, here: tuple[str, str | None], exists: Callable[[int], bool]
    ) -> bool:
        """``sending``, and no run will finish it: abandoned (its lease ran out) or orphaned
        (its process is gone)."""
        return self.abandoned(now) or self.orphaned(here, exists)

    def forced(self, force: bool) -> bool:
        """Whether ``--force`` (``force``) takes the row over: in any state but ``sending`` (a
        message being sent is left to its run, or resumed as it was once that run is gone)."""
        return force and self.status != SENDING

    def retry_due(self, now: datetime) -> bool:
        """A temporary failure whose next attempt time has come."""
        return self.status == TEMP_FAILED and (
            self.next_attempt_at is None or self.next_attempt_at <= as_utc(now)
        )


class SentItem(SQLModel, table=True):
    __tablename__ = "sent_items"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    paper_id: str
    delivery_id: int = Field(foreign_key="deliveries.id")
    sent_at: datetime


class AlertItem(SQLModel, table=True):
    """A paper an alert row holds. Each paper goes in one alert to a subscriber at most: its
    item is inserted with the row, in one transaction, and a row that would hold a paper
    another row holds is not made (two sweeps at once may group the new papers differently)."""

    __tablename__ = "alert_items"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id")
    paper_id: str
    delivery_id: int = Field(foreign_key="deliveries.id")


class Suppression(SQLModel, table=True):
    __tablename__ = "suppressions"
    email: str = Field(primary_key=True)
    reason: str
    created_at: datetime


class AdminAlertRow(SQLModel, table=True):
    """When the last admin alert of a kind was emailed, and when the hourly limit on that kind
    counts from (sooner once its trouble was over: see ``bot.admin.AdminAlerts.resolved``): a
    restarted worker keeps to the limit."""

    __tablename__ = "admin_alerts"
    kind: str = Field(primary_key=True)
    alerted_at: datetime
    counts_from: datetime


class KeptAdminAlertRow(SQLModel, table=True):
    """An admin alert not emailed yet (mail did not work), kept until it is: a restarted
    worker emails it once mail works, as the process that raised it would have."""

    __tablename__ = "admin_alerts_kept"
    kind: str = Field(primary_key=True)
    what: str
    todo: str
    raised_at: datetime
    held: bool = False


class RunRow(SQLModel, table=True):
    """One run (``send``, ``fetch``, a sweep). While it is ``running``, its summary names its
    process (``process``: host, process table and pid) and when that last showed it is alive
    (``alive_at``); once finished, it says what the run did. ``process`` names the process that
    ran it, finished or not."""

    __tablename__ = "runs"
    id: int | None = Field(default=None, primary_key=True)
    command: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = RUNNING
    process: str | None = None
    """The process that ran it, as ``host:pid`` (which worker, or which manual command); None
    for a run recorded by an older paperbot."""
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))

    def held(self, now: datetime) -> int:
        """How many due digests this ``paused`` sweep found held back by a pause that has not
        ended at ``now`` (0 for any other run)."""
        until = self.pause_end()
        if until is None or until <= as_utc(now):
            return 0
        return int(self.summary.get("counts", {}).get("held", 0))

    def pause_end(self) -> datetime | None:
        """When the email delivery pause this ``paused`` sweep records ends (None for any other
        run)."""
        until = self.summary.get("until") if self.status == PAUSED else None
        return None if until is None else as_utc(datetime.fromisoformat(until))

    def lost(
        self, now: datetime, here: tuple[str, str | None], exists: Callable[[int], bool]
    ) -> str | None:
        """Why a ``running`` run cannot be running any more (it was killed, or its process died
        without recording its end), or None when it may be. Its process is looked for when it
        runs here: on this host and in this process table (``here``, see ``this_machine``); any
        run is lost once it showed no sign of life for ``RUN_LEASE`` (a run recorded without one
        counts from its start)."""
        if self.status != RUNNING:
            return None
        process = self.summary.get("process") or {}
        host, pid = process.get("host"), process.get("pid")
        if process_gone(process, here, exists):
            return (
                f"its process ({pid} on {host}) is gone and never recorded the run's end "
                "(killed, or the database refused it)"
            )
        alive = self.summary.get("alive_at")
        last = datetime.fromisoformat(alive) if isinstance(alive, str) else self.started_at
        if as_utc(now) - last <= RUN_LEASE:
            return None
        where = f" (process {pid} on {host})" if host else ""
        return f"no sign of life since {as_utc(last):%Y-%m-%d %H:%M} UTC{where}"


def process_gone(
    process: dict[str, Any] | None, here: tuple[str, str | None], exists: Callable[[int], bool]
) -> bool:
    """Whether ``process`` (as ``bot.store.runs.this_process`` describes one) is known to be
    gone: it ran here (this host and process table, ``here``) and ``exists`` finds no such
    process now. A process elsewhere, or one not described, is never known to be gone."""
    if not process:
        return False
    pid = process.get("pid")
    where = (process.get("host"), process.get("table"))
    return where == here and isinstance(pid, int) and not exists(pid)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    _into_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _into_wal(cursor: Any) -> None:
    """Switch the database to WAL (once per file: the mode is kept in the file).

    The switch needs the file to itself and SQLite does not wait for it: when several processes
    open a new database at once, all but one are told it is locked. They try again for as long
    as the busy timeout would have waited.
    """
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


CONNECT_SECONDS = 10
"""How long a PostgreSQL server may take to accept a connection, unless the URL says."""


def connect_options(url: str) -> dict[str, Any]:
    """A connection timeout for PostgreSQL (libpq waits for ever by default)."""
    options = make_url(url).query
    if not url.startswith("postgresql") or any(k.lower() == "connect_timeout" for k in options):
        return {}
    return {"connect_timeout": CONNECT_SECONDS}


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the schema created; SQLite gets WAL mode and a busy timeout."""
    if url.startswith("sqlite"):
        options = {"timeout": BUSY_SECONDS, "check_same_thread": False}
        engine = create_engine(url, connect_args=options)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_options(url))
    for attempt in range(20):  # another process may be creating them at this very moment
        try:
            SQLModel.metadata.create_all(engine)
            break
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            # SQLite and PostgreSQL say a table "already exists"; PostgreSQL may also trip over
            # the type it registers for a new table: a unique violation whose detail says so
            if "already exists" not in str(exc) or attempt == 19:
                raise
            time.sleep(0.05)
    _add_new_columns(engine)
    return engine


def _add_new_columns(engine: Engine) -> None:
    """Add the columns a newer paperbot has to the tables of a database an older one made.

    Only nullable columns are ever added to a table after its first release, so an older row
    simply has none. Two processes may add one at the same moment: the loser finds it there.
    """
    tables = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        have = {c["name"] for c in tables.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as db:
                    db.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
            except (OperationalError, ProgrammingError) as exc:
                if "duplicate column" not in str(exc) and "already exists" not in str(exc):
                    raise


PAPER_FIELDS = tuple(f.name for f in fields(Paper))
"""The columns of a paper's row that hold the ``Paper``, in the order of its fields."""


def paper_columns(paper: Paper) -> dict[str, Any]:
    """A paper's fields as row columns (tuples become JSON lists)."""
    values = {name: getattr(paper, name) for name in PAPER_FIELDS}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def paper_from_row(row: PaperRow) -> Paper:
    """The plain Paper stored in a row."""
    return paper_from_values([getattr(row, name) for name in PAPER_FIELDS])


def paper_from_values(values: Iterable[Any]) -> Paper:
    """The plain Paper whose ``PAPER_FIELDS`` columns hold ``values`` (JSON lists become
    tuples)."""
    given: list[Any] = [tuple(value) if isinstance(value, list) else value for value in values]
    return Paper(*given)
