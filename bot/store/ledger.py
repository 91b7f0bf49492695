"""The delivery ledger: one row per subscriber, kind, date and ref, claimed atomically.

(new) --claim--> sending --250--> sent (+ sent items, one transaction)
                    |--4xx/552, lost before DATA--> temp_failed --due or manual retry--> sending
                    |--5xx, or retries given up--> perm_failed
                    |--suppressed at the last moment--> skipped
                    '--crash, or lost after DATA--> sending with an expired lease, or whose
                                                    process is gone
                                                    --> sending (same Message-ID)
                                                    --> perm_failed (tried too often)
(new) --nothing to send--> skipped

Claims are made in batches (one INSERT .. ON CONFLICT DO NOTHING .. RETURNING offered every key,
a guarded UPDATE for each row taken over), and ``sent`` is recorded for a batch in one transaction.
The statements a run repeats thousands of times are built once and run as Core statements on a
plain connection: no ORM unit of work, no per-call statement building.

An alert row holds every paper that fired for its subscriber in one sweep, and each paper goes
in one alert at most: a new alert row is inserted with an item per paper (``AlertItem``, unique
per subscriber and paper) in the same transaction, and is not made when another row holds one
of them (two sweeps at once may group the new papers differently; the papers left go in a later
alert). A retry or a resume carries the row's own papers, never one more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select

from bot.store.deliveries import DeliveryQueries, key_clause
from bot.store.runs import process_exists, this_machine, this_process
from bot.store.tables import (
    PERM_FAILED,
    SENDING,
    SENT,
    SKIPPED,
    TEMP_FAILED,
    AlertItem,
    Delivery,
    SentItem,
    as_utc,
)  # fmt: skip

DEFAULT_LEASE = timedelta(minutes=5)
ALERT = "alert"
"""The kind of row whose papers are held by one row each (see the module docstring)."""

_ROWS_FOR = select(Delivery).where(
    col(Delivery.subscriber_id).in_(bindparam("subscribers", expanding=True)),
    col(Delivery.digest_date).in_(bindparam("days", expanding=True)),
)
_SENT = (
    update(Delivery)
    .where(col(Delivery.id).in_(bindparam("ids", expanding=True)), col(Delivery.status) != SENT)
    .values(
        status=SENT, sent_at=bindparam("stamp"), updated_at=bindparam("stamp"), lease_until=None,
        last_code=None, last_error=None, next_attempt_at=None, resent_from=None,
    )
)  # fmt: skip
_UNHOLD = delete(AlertItem).where(
    col(AlertItem.subscriber_id) == bindparam("sid"), col(AlertItem.paper_id) == bindparam("pid")
)
_DROP = delete(Delivery).where(col(Delivery.id).in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True, slots=True)
class Claim:
    """A ledger row this process now owns and must finish (sent, failed or released)."""

    delivery_id: int
    subscriber_id: int
    message_id: str
    paper_ids: tuple[str, ...]
    attempts: int
    resumed: bool
    forced: bool = False
    """Taken over by ``force``: a ``sent`` row is sent again, another settled one for once."""
    sent_before: tuple[str | None, tuple[str, ...]] | None = None
    """A resend of a sent digest (forced by this claim, or by the claim this one took over):
    the Message-ID and papers of the message that went, which the row records again should
    this resend not go (``Delivery.resent_from``, ``Ledger._finish``)."""
    first_attempt: datetime | None = None

    @property
    def resent(self) -> bool:
        """Forced over a row that was ``sent``: the subscriber gets that digest a second time."""
        return self.forced and self.sent_before is not None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A key to claim, with the papers and Message-ID to record if the row is new."""

    subscriber_id: int
    day: date
    paper_ids: tuple[str, ...]
    message_id: str
    kind: str = "digest"
    ref: str = ""

    @property
    def key(self) -> tuple[int, str, date, str]:
        """The unique key of the ledger row."""
        return (self.subscriber_id, self.kind, self.day, self.ref)


class Ledger(DeliveryQueries):
    """Atomic transitions of delivery rows."""

    def __init__(self, engine: Engine, lease: timedelta = DEFAULT_LEASE) -> None:
        super().__init__(engine)
        self.lease = lease
        self._owed: dict[int, tuple[Claim, str | None]] = {}
        """Claims of this process the database refused to settle (it went away), by row id:
        to give back unsent, with why, or (None) to record ``sent``, the server having accepted
        them. ``settle_owed`` writes them once it works again."""
        deliveries = SQLModel.metadata.tables[str(Delivery.__tablename__)]
        self._insert_claimed = self._insert_ignoring_duplicates(Delivery).returning(
            deliveries.c.message_id, deliveries.c.id
        )
        self._insert_sent_items = self._insert_ignoring_duplicates(SentItem)
        items = SQLModel.metadata.tables[str(AlertItem.__tablename__)]
        self._insert_alert_items = self._insert_ignoring_duplicates(AlertItem).returning(
            items.c.subscriber_id, items.c.paper_id, items.c.delivery_id
        )

    def claim(
        self,
        subscriber_id: int,
        day: date,
        now: datetime,
        *,
        paper_ids: Sequence[str],
        new_message_id: Callable[[], str],
        kind: str = "digest",
        ref: str = "",
        retry_now: bool = False,
        force: bool = False,
    ) -> Claim | None:
        """Own the row for this key, or return None when it is done or someone else owns it.

        A new row is inserted as ``sending``. An existing row is taken over by a conditional
        UPDATE when its lease expired or the process that claimed it is gone (crash, or an
        outcome left unknown: same Message-ID and papers), when it failed
        temporarily and is due (or ``retry_now``), or when ``force`` asks for a deliberate resend.
        """
        request = ClaimRequest(subscriber_id, day, tuple(paper_ids), new_message_id(), kind, ref)
        return self.claim_many([request], now, retry_now=retry_now, force=force)[0]

    def claim_many(
        self,
        requests: Sequence[ClaimRequest],
        now: datetime,
        *,
        retry_now: bool = False,
        force: bool = False,
        lease: timedelta | None = None,
    ) -> list[Claim | None]:
        """``claim`` for many keys at once: one transaction inserts every new row.

        Every key is offered to the INSERT, which skips those that have a row; only the keys it
        skipped (none, in a first run) are read back to see whether their rows can be taken over.

        ``lease`` (default: the ledger's) is how long a claimed row may stay ``sending`` before
        another process may conclude its sender died and take it over.
        """
        stamp, until = as_utc(now), as_utc(now) + (lease or self.lease)
        owner = this_process()
        mine = self._insert_new(requests, stamp, until, owner) if requests else {}
        skipped = [r for r in requests if r.message_id not in mine]
        existing = self._rows_for(skipped) if skipped else {}
        result: list[Claim | None] = []
        for request in requests:
            row_id = mine.get(request.message_id)
            if row_id is not None:
                result.append(Claim(
                    row_id, request.subscriber_id, request.message_id, request.paper_ids, 1,
                    resumed=False, first_attempt=stamp,
                ))  # fmt: skip
                continue
            row = existing.get(request.key) or self.get(
                request.subscriber_id, request.day, request.kind, request.ref
            )
            taken = row and self._take_over(row, stamp, until, owner, request, retry_now, force)
            result.append(taken or None)
        return result

    def _rows_for(
        self, requests: Sequence[ClaimRequest]
    ) -> dict[tuple[int, str, date, str], Delivery]:
        keys = {r.key for r in requests}
        params = {
            "subscribers": list({r.subscriber_id for r in requests}),
            "days": list({r.day for r in requests}),
        }
        with self._session() as db:
            rows = db.exec(_ROWS_FOR, params=params).all()
        found = {(r.subscriber_id, r.kind, r.digest_date, r.ref): r for r in rows}
        return {key: row for key, row in found.items() if key in keys}

    def _insert_new(
        self,
        requests: Sequence[ClaimRequest],
        stamp: datetime,
        until: datetime,
        owner: dict[str, Any],
    ) -> dict[str, int]:
        """Insert ``sending`` rows, skipping keys taken meanwhile; our row ids by Message-ID.

        A new alert row is kept only when it can hold each of its papers (``_hold_papers``).
        """
        values = [
            {"subscriber_id": r.subscriber_id, "kind": r.kind, "digest_date": r.day, "ref": r.ref,
             "status": SENDING, "message_id": r.message_id, "paper_ids": list(r.paper_ids),
             "attempts": 1, "lease_until": until, "claimed_by": owner, "created_at": stamp,
             "updated_at": stamp}
            for r in requests
        ]  # fmt: skip
        with self.engine.begin() as db:
            mine = {m: i for m, i in db.execute(self._insert_claimed, values).all()}
            alerts = [r for r in requests if r.kind == ALERT and r.message_id in mine]
            for lost in self._hold_papers(db, alerts, mine) if alerts else ():
                del mine[lost]
            return mine

    def _hold_papers(
        self, db: Connection, requests: Sequence[ClaimRequest], rows: Mapping[str, int]
    ) -> list[str]:
        """Insert the items of new alert rows (``rows``: their ids by Message-ID), in the
        transaction that inserts the rows; the Message-IDs of those that cannot hold every paper
        of theirs (another row holds one), removed again with their items before anyone sees
        them.

        The items go in one order (subscriber, then paper), so that two transactions inserting
        some of the same wait for one another rather than deadlock.
        """
        items = {(r.subscriber_id, p, rows[r.message_id]) for r in requests for p in r.paper_ids}
        wanted = sorted(items)
        values = [{"subscriber_id": s, "paper_id": p, "delivery_id": d} for s, p, d in wanted]
        held = {(s, p, d) for s, p, d in db.execute(self._insert_alert_items, values).all()}
        lost = {d for s, p, d in wanted if (s, p, d) not in held}
        if not lost:
            return []
        undo = [{"sid": s, "pid": p} for s, p, d in held if d in lost]
        if undo:
            db.execute(_UNHOLD, undo)
        db.execute(_DROP, {"ids": sorted(lost)})
        return [r.message_id for r in requests if rows[r.message_id] in lost]

    def _insert_ignoring_duplicates(self, model: type[SQLModel]) -> Any:
        """An INSERT of ``model`` rows that skips rows whose unique key is already taken."""
        table = SQLModel.metadata.tables[str(model.__tablename__)]
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return insert(table)  # pragma: no cover - other databases: duplicates raise

    def _take_over(
        self,
        row: Delivery,
        stamp: datetime,
        until: datetime,
        owner: dict[str, Any],
        request: ClaimRequest,
        retry_now: bool,
        force: bool,
    ) -> Claim | None:
        crashed = row.abandoned(stamp) or row.orphaned(this_machine(), process_exists)
        due = row.retry_due(stamp) or (retry_now and row.status == TEMP_FAILED)
        forced = row.forced(force)
        if not (crashed or due or forced):
            return None
        message_id = request.message_id if forced else (row.message_id or request.message_id)
        # A resumed message is sent again exactly as it was (same Message-ID, same papers: none
        # for a "nothing matched" note); a retry after a refusal carries what is unsent now.
        papers = list(row.paper_ids if crashed else request.paper_ids)
        if row.kind == ALERT:
            # Its papers are held by the row alone: a retry may leave some out but never takes
            # in another, and only a request that names every paper it carries takes it over
            # (its message is made of those the request knows)
            papers = [paper for paper in papers if paper in row.paper_ids]
            if not papers or not set(papers) <= set(request.paper_ids):
                return None
        values: dict[str, Any] = {
            "status": SENDING, "message_id": message_id, "paper_ids": papers,
            "attempts": row.attempts + 1, "lease_until": until, "claimed_by": owner,
            "updated_at": stamp,
        }  # fmt: skip
        if crashed:  # its sender died: the message may have gone before it could say so
            values["maybe_sent"] = True
        if forced and row.status == SENT:  # kept while the resend is under way, whoever has it
            values["resent_from"] = {"message_id": row.message_id, "paper_ids": row.paper_ids}
        before = values.get("resent_from", row.resent_from if row.status == SENDING else None)
        guard = update(Delivery).where(
            col(Delivery.id) == row.id,
            col(Delivery.status) == row.status,
            col(Delivery.updated_at) == row.updated_at,
        )
        with self._session() as db:
            won = db.exec(guard.values(**values)).rowcount == 1
            db.commit()
        if not won:
            return None
        assert row.id is not None
        sent_before = (before["message_id"], tuple(before["paper_ids"])) if before else None
        return Claim(
            row.id, row.subscriber_id, message_id, tuple(papers), row.attempts + 1,
            resumed=crashed, forced=forced, sent_before=sent_before,
            first_attempt=stamp if forced else row.created_at,
        )  # fmt: skip

    def mark_sent(self, claim: Claim, now: datetime) -> None:
        """The server accepted the message: record it and its papers in one transaction."""
        self.mark_sent_many([claim], now)

    def mark_sent_many(self, claims: Sequence[Claim], now: datetime) -> None:
        """Record several accepted messages and their papers in one transaction.

        ``sent`` is the truth whoever holds the row now: the server accepted the message.
        """
        if not claims:
            return
        stamp = as_utc(now)
        items = [
            {"subscriber_id": c.subscriber_id, "paper_id": paper_id,
             "delivery_id": c.delivery_id, "sent_at": stamp}
            for c in claims
            for paper_id in dict.fromkeys(c.paper_ids)
        ]  # fmt: skip
        with self.engine.begin() as db:
            db.execute(_SENT, {"ids": [c.delivery_id for c in claims], "stamp": stamp})
            if items:
                db.execute(self._insert_sent_items, items)

    def _finish(self, claim: Claim, now: datetime, **values: Any) -> bool:
        """Move a claimed row on, only if this claim still owns it (fencing a stale sender).

        A forced resend of a sent digest that fails, is skipped, is given back or may not
        have arrived becomes that sent digest again, as it was: the subscriber has it, so no
        later run retries it (a retry, carrying only what was never sent to them, would bring
        another digest, or a "nothing matched" note, for the same date); ``--force`` sends it
        again.
        """
        if claim.sent_before is not None:
            message_id, paper_ids = claim.sent_before
            values = {
                "status": SENT, "message_id": message_id, "paper_ids": list(paper_ids),
                "attempts": claim.attempts - 1, "next_attempt_at": None, "last_code": None,
                "last_error": None, "resent_from": None,
            }  # fmt: skip
        owned = update(Delivery).where(
            col(Delivery.id) == claim.delivery_id,
            col(Delivery.status) == SENDING,
            col(Delivery.attempts) == claim.attempts,
        )
        with self._session() as db:
            won = db.exec(owned.values({"updated_at": as_utc(now), "lease_until": None} | values))
            db.commit()
        return bool(won.rowcount == 1)

    def mark_unknown(self, claim: Claim, now: datetime, *, error: str, until: datetime) -> bool:
        """The connection was lost after the message data: it may have arrived. The row stays
        ``sending`` (it is sent again with the same Message-ID), and its lease runs until
        ``until``: nobody takes it over before then, not even once this process has ended (no
        process claims it meanwhile). A forced resend of a sent digest stays sent instead (see
        ``_finish``)."""
        return self._finish(
            claim, now, status=SENDING, lease_until=as_utc(until), next_attempt_at=None,
            last_code=None, last_error=error[:1000], claimed_by=None, maybe_sent=True,
        )  # fmt: skip

    def mark_skipped(self, claim: Claim, now: datetime, reason: str) -> bool:
        """A claimed message was not sent on purpose (the address became suppressed)."""
        return self._finish(claim, now, status=SKIPPED, last_error=reason)

    def mark_failed(
        self,
        claim: Claim,
        now: datetime,
        *,
        error: str,
        code: int | None = None,
        retry_at: datetime | None = None,
        attempted: bool = True,
    ) -> bool:
        """Record a failure: temporary when ``retry_at`` is given, permanent otherwise. A claim
        not ``attempted`` (given up without sending it: it was tried as often as the retry
        policy allows) does not count as an attempt."""
        uncounted = {} if attempted else {"attempts": max(claim.attempts - 1, 0)}
        return self._finish(
            claim, now,
            status=TEMP_FAILED if retry_at is not None else PERM_FAILED,
            next_attempt_at=as_utc(retry_at) if retry_at is not None else None,
            last_code=code, last_error=error[:1000], **uncounted,
        )  # fmt: skip

    def release(self, claim: Claim, now: datetime, reason: str) -> bool:
        """Give a claimed row back unsent, saying why (the run stopped before the server had a
        word about it): due again at once, and the claim does not count as an attempt."""
        return self._finish(
            claim, now, status=TEMP_FAILED, next_attempt_at=as_utc(now),
            attempts=max(claim.attempts - 1, 0), last_error=reason[:1000],
        )  # fmt: skip

    def owe(self, claims: Iterable[Claim], reason: str | None) -> None:
        """Keep claims the database refused to settle, for ``settle_owed``: to give back unsent,
        saying ``reason`` (no server had them), or, with None, to record ``sent`` (the server
        accepted them)."""
        self._owed.update((claim.delivery_id, (claim, reason)) for claim in claims)

    def settle_owed(self, now: datetime) -> tuple[int, int]:
        """Write what ``owe`` kept, now that the database may work again: how many rows were
        given back (due at once) and how many recorded ``sent``. A row is given back only if
        this process still owns it (see ``_finish``): once its lease ran out during the
        outage, another process may have taken it over, and keeps it. The database error is
        raised when it still refuses, and what is left stays owed. The worker calls it at each
        sweep; a command, before it exits."""
        released = sent = 0
        for row_id, (claim, reason) in sorted(self._owed.items()):
            if reason is None:
                self.mark_sent(claim, now)
                sent += 1
            else:
                released += self.release(claim, now, reason)
            del self._owed[row_id]
        return released, sent

    @property
    def owed(self) -> tuple[int, int]:
        """What ``settle_owed`` has still to write: how many rows to give back, and how many
        to record ``sent``."""
        sent = sum(1 for _, reason in self._owed.values() if reason is None)
        return len(self._owed) - sent, sent

    def postpone_retries(self, until: datetime, now: datetime) -> int:
        """Make the temporary failures due before ``until`` due at ``until`` (delivery waits
        until then); a manual retry still sends them at once. How many waited."""
        stamp = as_utc(until)
        due_before = update(Delivery).where(
            col(Delivery.status) == TEMP_FAILED,
            (col(Delivery.next_attempt_at) < stamp) | col(Delivery.next_attempt_at).is_(None),
        )
        with self._session() as db:
            moved = db.exec(due_before.values(next_attempt_at=stamp, updated_at=as_utc(now)))
            db.commit()
        return int(moved.rowcount)

    def reopen_refused(self, subscriber_id: int, since: datetime, now: datetime) -> list[Delivery]:
        """Make the subscriber's messages that failed for good from ``since`` on (refused, as
        when their address was suppressed) due again at once, as temporary failures: the next
        run sends them (same Message-ID). The rows reopened."""
        refused = (
            col(Delivery.subscriber_id) == subscriber_id,
            col(Delivery.status) == PERM_FAILED,
            col(Delivery.updated_at) >= as_utc(since),
        )
        with self._session() as db:
            rows = list(db.exec(select(Delivery).where(*refused)).all())
            if rows:
                ids = [row.id for row in rows]
                db.exec(update(Delivery).where(col(Delivery.id).in_(ids), *refused).values(
                    status=TEMP_FAILED, next_attempt_at=as_utc(now), updated_at=as_utc(now),
                ))  # fmt: skip
                db.commit()
        return rows

    def record_skipped(self, subscriber_id: int, day: date, now: datetime, reason: str) -> bool:
        """Record that nothing is to be sent for this key; False when it was already settled.

        A temporary failure is settled as ``skipped`` too, and holds no papers any more: they
        went out with a later digest, or no longer match. A ``sending`` row is not: its message
        may have gone out, and is sent again as it was (see ``_take_over``).
        """
        stamp = as_utc(now)
        row = Delivery(
            subscriber_id=subscriber_id, digest_date=day, status=SKIPPED, last_error=reason,
            created_at=stamp, updated_at=stamp,
        )  # fmt: skip
        with self._session() as db:
            try:
                db.add(row)
                db.commit()
                return True
            except IntegrityError:
                db.rollback()
        unfinished = update(Delivery).where(
            *key_clause(subscriber_id, day, "digest", ""), col(Delivery.status) == TEMP_FAILED
        )
        with self._session() as db:
            settled = db.exec(unfinished.values(
                status=SKIPPED, last_error=f"{reason} (superseded)", updated_at=stamp,
                paper_ids=[], next_attempt_at=None,
            ))  # fmt: skip
            db.commit()
        return bool(settled.rowcount == 1)

    def settle_old_alerts(self, before: date, now: datetime) -> int:
        """Give up on alerts whose window has passed that failed for now, or that their sender
        left ``sending`` (its lease ran out: none resumed it in time)."""
        abandoned = (col(Delivery.status) == SENDING) & (col(Delivery.lease_until) < as_utc(now))
        stale = update(Delivery).where(
            col(Delivery.kind) == ALERT,
            (col(Delivery.status) == TEMP_FAILED) | abandoned,
            col(Delivery.digest_date) < before,
        )
        with self._session() as db:
            done = db.exec(stale.values(
                status=SKIPPED, last_error="alert window passed; its papers go in the digest",
                next_attempt_at=None, updated_at=as_utc(now),
            ))  # fmt: skip
            db.commit()
        return int(done.rowcount)
