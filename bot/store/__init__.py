"""The database: tables, engine and queries. The only package that imports sqlmodel.

The delivery ledger is the heart of it. A row moves ``sending -> sent`` (or ``temp_failed``,
``perm_failed``, ``skipped``); its Message-ID is committed with ``sending`` *before* the SMTP
transaction, and ``sent`` plus the sent items are committed together after the server's 250.
A row is claimed with one atomic INSERT or conditional UPDATE, so two processes never send the
same digest. A ``sending`` row whose lease has expired belongs to a crashed process (or to a message
whose connection was lost after the data) and may be claimed again, with the same Message-ID.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError
from sqlalchemy import bindparam, case, insert, make_url, update
from sqlalchemy import select as select_columns
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import col, func, select

from bot.errors import BotError, ConfigError
from bot.models import Paper, Subscriber, combine_papers
from bot.store.admin import AdminAlertLog
from bot.store.ledger import Claim, ClaimRequest, Ledger
from bot.store.runs import RunLog
from bot.store.tables import (
    IN_LIST_LIMIT,
    OUTCOME_UNKNOWN,
    PAPER_FIELDS,
    SENDING,
    SENT,
    SKIPPED,
    TEMP_FAILED,
    Delivery,
    ListRow,
    PaperRow,
    SentItem,
    SubscriberRow,
    Suppression,
    as_utc,
    db_reason,
    make_engine,
    paper_columns,
    paper_from_row,
    paper_from_values,
    utcnow,
)  # fmt: skip

__all__ = [
    "OUTCOME_UNKNOWN", "Claim", "ClaimRequest", "DatabaseFailure", "Ledger", "Removal", "Store",
    "StoredPaper", "SyncReport", "db_reason", "missing_database", "shown_url", "unavailable",
]  # fmt: skip


log = logging.getLogger(__name__)
REFUSED_BEFORE = timedelta(minutes=1)
"""How long before its address was suppressed a refused message may have been recorded."""

_SUBSCRIBERS = select(
    col(SubscriberRow.id), col(SubscriberRow.email), col(SubscriberRow.profile),
    col(SubscriberRow.active),
)  # fmt: skip
_IDS = select(col(SubscriberRow.id), col(SubscriberRow.email))
_ACTIVE = select(col(SubscriberRow.email)).where(col(SubscriberRow.active))
_STORED_PAPERS = select_columns(
    col(PaperRow.list_date), col(PaperRow.first_seen),
    *(getattr(PaperRow, name) for name in PAPER_FIELDS),
)  # fmt: skip
_LISTS_STORED = select(col(ListRow.list_date), col(ListRow.stored_at)).order_by(
    col(ListRow.list_date)
)
_RESYNC = (
    update(SubscriberRow)
    .where(col(SubscriberRow.id) == bindparam("row"))
    .values(
        email=bindparam("email"), profile=bindparam("profile"), active=True,
        deactivated_at=None, updated_at=bindparam("now"),
    )
)  # fmt: skip
_DEACTIVATE = (
    update(SubscriberRow)
    .where(col(SubscriberRow.id).in_(bindparam("rows", expanding=True)))
    .values(active=False, deactivated_at=bindparam("now"), updated_at=bindparam("now"))
)


class StoredPaper(NamedTuple):
    """A stored paper with the list it came in and when it was first stored."""

    paper: Paper
    list_date: date
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What syncing the profiles file changed: subscribers added, updated (their profile
    changed), reactivated (back in the file after they were removed) and deactivated (removed),
    out of ``before`` active ones."""

    added: int
    updated: int
    reactivated: int
    deactivated: int
    before: int
    ids: dict[str, int]

    @property
    def removal(self) -> Removal:
        """The subscribers this sync deactivated, of the active ones."""
        return Removal(self.deactivated, self.before)


MOST_REMOVED = 0.5
"""A profiles file that removes more than this share of the active subscribers (2 at least) is
no ordinary edit: a file overwritten or cut short by mistake stops their mail. The worker warns
and alerts the admin; ``paperbot send`` asks for ``--yes`` before deactivating them."""


@dataclass(frozen=True, slots=True)
class Removal:
    """How many active subscribers syncing a profiles file deactivates (they are not in it any
    more), of the ``active`` ones."""

    deactivated: int
    active: int

    @property
    def most(self) -> bool:
        """Whether that is most of them (see ``MOST_REMOVED``): the one rule of every command."""
        return self.deactivated >= 2 and self.deactivated > MOST_REMOVED * self.active

    def __str__(self) -> str:
        """``2 of the 3 subscribers``, for the messages about it."""
        return f"{self.deactivated} of the {self.active} subscribers"


_OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
_NOT_AN_OUTAGE = re.compile(r"no such (?:table|column)|has no column|syntax error")
"""What SQLite reports as an OperationalError too, though it is a bug in the SQL or schema."""
_CREDENTIALS = re.compile(r"[^/@\s]*@")


DatabaseFailure = DBAPIError
"""What a store method raises when the database fails it (gone away, permission denied...)."""


def shown_url(url: str) -> str:
    """``url`` as it may be shown or logged: any password (``sslpassword=`` and other options
    too) replaced by ``***``. Whatever stands before an ``@`` of a URL that does not parse is
    hidden whole, as is a password that holds an ``@`` (which a parser would take for the
    host)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return repr(_CREDENTIALS.sub("***@", url))
    if parsed.host and "@" in parsed.host:
        return repr(_CREDENTIALS.sub("***@", url))
    options = [key for key in parsed.query if key.lower().endswith("password")]
    if options:
        parsed = parsed.update_query_dict(dict.fromkeys(options, "***"))
    return repr(parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***"))


def _secrets(url: str) -> list[str]:
    """The password of ``url`` (as written, and each piece of it between ``:`` and ``@``, which
    a parser may quote when it reads the URL wrong) and the values of ``…password=`` options."""
    authority = url.partition("://")[2].split("/", 1)[0]
    written = authority.rpartition("@")[0].partition(":")[2]
    pieces = [written, *re.split(r"[:@]", written)] if written else []
    options = parse_qs(urlsplit(url).query)
    pieces += [
        value
        for key, values in options.items()
        if key.lower().endswith("password")
        for value in values
    ]
    return sorted({p for p in pieces if len(p) >= 2}, key=len, reverse=True)


def _hidden(reason: str, url: str) -> str:
    """``reason`` (an error about ``url``) with the URL's password and its pieces hidden."""
    for secret in _secrets(url):
        reason = reason.replace(secret, "***")
    return reason


def _bad_url(url: str, reason: str) -> ConfigError:
    return ConfigError(
        "invalid settings:\n  PAPERBOT_DATABASE_URL: "
        f"cannot open {shown_url(url)}: {_hidden(reason, url)}"
    )


_BAD_OPTION = re.compile(r"\binvalid \w+ value\b|\binvalid (?:integer )?value\b")
"""How libpq says it refused an option of the URL before connecting (``sslmode=bogus``)."""


def _refused_by_driver(exc: DBAPIError) -> bool:
    """Whether the driver itself refused to connect, before any server answered: a
    ``ProgrammingError`` without an SQLSTATE (a server's refusals always carry one), or
    libpq's own word that an option's value is invalid."""
    if getattr(exc.orig, "sqlstate", None) is not None:
        return False
    return isinstance(exc, ProgrammingError) or bool(_BAD_OPTION.search(db_reason(exc)))


def missing_database(url: str) -> Path | None:
    """The file of a SQLite ``url`` when it does not exist (opening it would create it)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    name = parsed.database
    if not parsed.drivername.startswith("sqlite") or not name or name == ":memory:":
        return None
    return None if Path(name).exists() else Path(name)


def unavailable(exc: BaseException) -> str | None:
    """Why the database cannot be reached or used, when that is what ``exc`` says (the server
    is down or refuses the connection, the connection dropped, the file cannot be opened, the
    disk is full, the pool ran dry): see ``db_reason``. None for every other error, such as a
    query the database rejects."""
    reason = db_reason(exc)
    if isinstance(exc, _OUTAGES) and not _NOT_AN_OUTAGE.search(reason):
        return reason
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return reason
    return None


class Store(RunLog, AdminAlertLog):
    """Queries over one database; every method opens and commits its own short transaction."""

    def __init__(self, url: str) -> None:
        try:
            self.engine = make_engine(url)
        except DBAPIError as exc:
            reason = db_reason(exc)
            # A server that is down or refuses the login, unless the driver refused an option
            # of the URL; a SQLite file that cannot be opened there is a bad setting too.
            if not url.startswith("sqlite") and not _refused_by_driver(exc):
                raise BotError(
                    f"cannot open the database {shown_url(url)} (PAPERBOT_DATABASE_URL): "
                    f"{_hidden(reason, url)}"
                ) from None
            raise _bad_url(url, reason) from None
        except (SQLAlchemyError, ImportError, ValueError) as exc:  # the URL itself is wrong
            raise _bad_url(url, str(exc)) from None
        super().__init__(self.engine)
        self.ledger = Ledger(self.engine)

    def close(self) -> None:
        """Stop showing runs alive and close every pooled connection."""
        self.stop_heartbeat()
        self.engine.dispose()

    # -- subscribers -------------------------------------------------------------------------

    def sync_subscribers(self, subscribers: Sequence[Subscriber]) -> SyncReport:
        """Mirror the profiles file: add new, update changed, deactivate removed (history kept).

        Two processes syncing the same new subscribers at once: the loser of the race on the
        unique email simply syncs again against the rows the winner wrote.
        """
        for _ in range(2):
            try:
                return self._sync(subscribers)
            except IntegrityError:
                continue
        return self._sync(subscribers)

    def _sync(self, subscribers: Sequence[Subscriber]) -> SyncReport:
        """One transaction of Core statements: a run may sync tens of thousands of profiles."""
        now, wanted = as_utc(utcnow()), {s.email.lower(): s for s in subscribers}
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        back = 0
        with self.engine.begin() as db:
            stored = {r.email.lower(): r for r in db.execute(_SUBSCRIBERS)}
            for key, sub in wanted.items():
                profile, row = sub.model_dump_json(), stored.get(key)
                if row is None:
                    new.append({"email": sub.email, "profile": profile, "created_at": now,
                                "updated_at": now})  # fmt: skip
                elif row.profile != profile or not row.active:
                    changed.append({"row": row.id, "email": sub.email, "profile": profile,
                                    "now": now})  # fmt: skip
                    back += not row.active
            gone = [r.id for key, r in stored.items() if key not in wanted and r.active]
            if new:
                db.execute(insert(SubscriberRow), new)
            if changed:
                db.execute(_RESYNC, changed)
            if gone:
                db.execute(_DEACTIVATE, {"rows": gone, "now": now})
            ids = {r.email.lower(): r.id for r in db.execute(_IDS)}
        before = sum(1 for r in stored.values() if r.active)
        return SyncReport(len(new), len(changed) - back, back, len(gone), before, ids)

    def removal(self, subscribers: Sequence[Subscriber]) -> Removal:
        """Whom syncing ``subscribers`` would deactivate (the active subscribers not among
        them), changing nothing."""
        wanted = {s.email.lower() for s in subscribers}
        with self.engine.connect() as db:
            active = [email.lower() for email in db.scalars(_ACTIVE)]
        return Removal(sum(1 for email in active if email not in wanted), len(active))

    def active_subscribers(self) -> dict[int, Subscriber]:
        """Active subscribers by id, as last synced: each exactly as the profiles file that was
        synced said (its profile is stored validated, defaults applied). One that no longer
        validates (a time zone dropped from the system's database) is left out, said in the log."""
        query = (
            select(SubscriberRow).where(col(SubscriberRow.active)).order_by(col(SubscriberRow.id))
        )
        with self.session() as db:
            rows = db.exec(query).all()
        found: dict[int, Subscriber] = {}
        for row in rows:
            try:
                found[row.id or 0] = Subscriber.model_validate_json(row.profile)
            except ValidationError as exc:
                why = "; ".join(str(e["msg"]) for e in exc.errors())
                log.warning("stored profile of %s left out: %s", row.email, why)
        return found

    def subscriber_ids(self) -> dict[str, int]:
        """Every stored subscriber's id (active or not) by lower-cased email, in one query."""
        with self.engine.connect() as db:
            return {r.email.lower(): r.id for r in db.execute(_IDS)}

    def subscriber_id(self, email: str) -> int | None:
        """The stored id of a subscriber (active or not), without changing anything."""
        with self.session() as db:
            query = select(SubscriberRow.id).where(func.lower(SubscriberRow.email) == email.lower())
            return db.exec(query).first()

    # -- papers ------------------------------------------------------------------------------

    def save_papers(
        self, papers: Iterable[Paper], list_date: date, now: datetime | None = None
    ) -> tuple[int, int]:
        """Store papers seen in the list for ``list_date``; return (new, updated). Idempotent.

        A paper stored already keeps what this fetch did not bring (a source that failed or does
        not know a field, such as Hugging Face's upvotes when only arXiv answered): the fetched
        fields win, categories and sources are joined.

        When another process stores the same papers at the same moment, store again: the
        second pass finds their rows and only updates what differs.
        """
        batch = list(papers)
        for _ in range(2):
            try:
                return self._save_papers(batch, list_date, as_utc(now or utcnow()))
            except IntegrityError:
                continue
        return self._save_papers(batch, list_date, as_utc(now or utcnow()))

    def _save_papers(
        self, papers: Sequence[Paper], list_date: date, now: datetime
    ) -> tuple[int, int]:
        new = changed = 0
        with self.session() as db:
            ids = [paper.id for paper in papers]
            rows: dict[str, PaperRow] = {}
            for start in range(0, len(ids), IN_LIST_LIMIT):
                query = select(PaperRow).where(
                    col(PaperRow.id).in_(ids[start : start + IN_LIST_LIMIT])
                )
                rows.update((row.id, row) for row in db.exec(query))
            for paper in papers:
                row = rows.get(paper.id)
                if row is not None:  # a source that failed this time takes nothing away
                    paper = combine_papers(paper, paper_from_row(row))
                fields = paper_columns(paper)
                if row is None:
                    rows[paper.id] = PaperRow(**fields, list_date=list_date, first_seen=now)
                    db.add(rows[paper.id])
                    new += 1
                    continue
                if any(getattr(row, k) != v for k, v in fields.items()):
                    for key, value in fields.items():
                        setattr(row, key, value)
                    db.add(row)
                    changed += 1
            if papers:
                listed = db.get(ListRow, list_date) or ListRow(
                    list_date=list_date, papers=len(papers), stored_at=now
                )
                listed.papers, listed.stored_at = len(papers), now
                db.add(listed)
            db.commit()
        return new, changed

    def has_papers_for(self, list_date: date) -> bool:
        """Whether the list of ``list_date`` was stored with papers in it: its papers may all
        have been stored before, from an earlier day's list (see ``ListRow``). A database
        written before lists were recorded tells it by its papers' list dates alone."""
        with self.session() as db:
            if db.get(ListRow, list_date) is not None:
                return True
            query = (
                select(func.count()).select_from(PaperRow).where(PaperRow.list_date == list_date)
            )
            return db.exec(query).one() > 0

    def papers_between(self, first: date, last: date) -> list[StoredPaper]:
        """Papers whose list date is within [first, last], with when they were first stored.

        Read as plain columns, without ORM objects: in half the time or less, and a digest
        reads 30 days of them."""
        query = _STORED_PAPERS.where(
            col(PaperRow.list_date) >= first, col(PaperRow.list_date) <= last
        ).order_by(col(PaperRow.list_date), col(PaperRow.id))
        with self.engine.connect() as db:
            rows = db.execute(query).all()
        return [StoredPaper(paper_from_values(row[2:]), row[0], row[1]) for row in rows]

    def lists_stored(self) -> tuple[tuple[date, datetime], ...]:
        """Every stored list, each with when it was last stored: they change whenever any paper
        is stored or updated. The papers of a window of list dates may change with a list
        dated before it too: a later fetch of an earlier list updates the papers it carries
        that a later list stored first (a paper keeps the date of its first list)."""
        with self.engine.connect() as db:
            return tuple((day, stored) for day, stored in db.execute(_LISTS_STORED))

    def stored_paper(self, paper_id: str) -> StoredPaper | None:
        """One stored paper with its list date, or None."""
        with self.session() as db:
            row = db.get(PaperRow, paper_id)
            return (
                None
                if row is None
                else StoredPaper(paper_from_row(row), row.list_date, row.first_seen)
            )

    def paper_titles(self) -> dict[str, str]:
        """Every stored paper's title by id, the latest lists first."""
        with self.session() as db:
            query = select(PaperRow.id, PaperRow.title).order_by(
                col(PaperRow.list_date).desc(), col(PaperRow.id)
            )
            return dict(db.exec(query).all())

    def papers_by_id(self, ids: Iterable[str]) -> dict[str, Paper]:
        """Stored papers with these ids."""
        wanted = list(set(ids))
        with self.session() as db:
            rows = db.exec(select(PaperRow).where(col(PaperRow.id).in_(wanted))).all()
            return {r.id: paper_from_row(r) for r in rows}

    # -- history -----------------------------------------------------------------------------

    def sent_paper_ids(
        self,
        subscriber_ids: Iterable[int],
        among: Iterable[str] | None = None,
        kind: str | None = None,
    ) -> dict[int, set[str]]:
        """Papers already sent to each subscriber, only those ``among`` these ids if given, and
        only in emails of ``kind`` (``alert``) if given.

        Runs pass the papers they consider, so the query stays the size of a window of lists
        rather than of the whole history.
        """
        wanted = set(subscriber_ids)
        query = select(SentItem.subscriber_id, SentItem.paper_id)
        if kind is not None:
            query = query.join(Delivery, col(Delivery.id) == col(SentItem.delivery_id)).where(
                col(Delivery.kind) == kind
            )
        if among is not None:
            query = query.where(col(SentItem.paper_id).in_(list(set(among))))
        if len(wanted) <= IN_LIST_LIMIT:
            query = query.where(col(SentItem.subscriber_id).in_(list(wanted)))
        result: dict[int, set[str]] = {}
        with self.session() as db:
            for sid, pid in db.exec(query).all():
                if sid in wanted:
                    result.setdefault(sid, set()).add(pid)
        return result

    def sent_in(self, subscriber_id: int, paper_id: str) -> tuple[str, date, datetime] | None:
        """The email that carried the paper to the subscriber, if one did: its kind and date,
        and when it was sent."""
        query = (
            select(col(Delivery.kind), col(Delivery.digest_date), col(SentItem.sent_at))
            .join(SentItem, col(SentItem.delivery_id) == col(Delivery.id))
            .where(SentItem.subscriber_id == subscriber_id, SentItem.paper_id == paper_id)
        )
        with self.session() as db:
            found = db.exec(query).first()
        return None if found is None else (found[0], found[1], as_utc(found[2]))

    def last_digest_times(self, before: date) -> dict[int, datetime]:
        """When each subscriber's latest digest before ``before`` was made (sent or skipped)."""
        with self.session() as db:
            query = (
                select(Delivery.subscriber_id, func.max(Delivery.created_at))
                .where(Delivery.kind == "digest", Delivery.digest_date < before)
                .where(col(Delivery.status).in_([SENT, SKIPPED]))
                .group_by(col(Delivery.subscriber_id))
            )
            return {sid: moment for sid, moment in db.exec(query).all()}

    # -- suppressions ------------------------------------------------------------------------

    def suppress(self, email: str, reason: str, now: datetime | None = None) -> None:
        """Never send to ``email`` again until an admin clears it; ``now`` by the clock of the
        run (the ledger's), else the wall clock."""
        with self.session() as db:
            if db.get(Suppression, email.lower()) is None:
                since = as_utc(now or utcnow())
                db.add(Suppression(email=email.lower(), reason=reason, created_at=since))
                db.commit()

    def unsuppress(self, email: str) -> bool:
        """Clear a suppression; return whether there was one."""
        with self.session() as db:
            row = db.get(Suppression, email.lower())
            if row is not None:
                db.delete(row)
                db.commit()
            return row is not None

    def restore(
        self, suppressions: Sequence[Suppression], now: datetime
    ) -> dict[str, list[Delivery]]:
        """Clear suppressions, and make the messages refused when each began due again at once
        (``Ledger.reopen_refused``): the next run sends them. The rows reopened, by address."""
        ids, reopened = self.subscriber_ids(), {}
        for suppression in suppressions:
            self.unsuppress(suppression.email)
            sid = ids.get(suppression.email.lower())
            since = as_utc(suppression.created_at) - REFUSED_BEFORE
            rows = self.ledger.reopen_refused(sid, since, now) if sid is not None else []
            reopened[suppression.email] = rows
        return reopened

    def suppressed(self) -> dict[str, Suppression]:
        """Every suppressed address with its reason."""
        with self.session() as db:
            return {r.email: r for r in db.exec(select(Suppression)).all()}

    def suppressed_emails(self) -> set[str]:
        """Every suppressed address (lower case): one query for a whole batch of checks."""
        with self.session() as db:
            return set(db.exec(select(Suppression.email)).all())

    def upcoming(self, limit: int = 20) -> tuple[list[tuple[Delivery, str]], int, int]:
        """Rows still to be sent (temporary failures and ``sending``) of active subscribers,
        soonest first, with email, at most ``limit``; how many there are in all; and how many
        more belong to subscribers removed from the profiles (nothing sends those, unless the
        subscriber is added back)."""
        unsent = col(Delivery.status).in_([TEMP_FAILED, SENDING])
        soonest = case(  # the rule of ``Delivery.next_try``, in SQL
            (col(Delivery.status) == SENDING, col(Delivery.lease_until)),
            else_=col(Delivery.next_attempt_at),
        )
        joined = col(SubscriberRow.id) == col(Delivery.subscriber_id)
        query = (
            select(Delivery, SubscriberRow.email)
            .join(SubscriberRow, joined)
            .where(unsent & col(SubscriberRow.active))
            .order_by(soonest)
            .limit(limit)
        )
        count = (
            select(SubscriberRow.active, func.count())
            .select_from(Delivery)
            .join(SubscriberRow, joined)
            .where(unsent)
            .group_by(col(SubscriberRow.active))
        )
        with self.session() as db:
            rows = [(row, email) for row, email in db.exec(query).all()]
            counts = {bool(active): int(n) for active, n in db.exec(count).all()}
        return rows, counts.get(True, 0), counts.get(False, 0)
