"""The delivery ledger: one row per subscriber, kind, date and ref, claimed atomically.

(new) --claim--> sending --250--> sent (+ sent items, one transaction)
                    |--4xx/552--> temp_failed --due or manual retry--> sending
                    |--5xx------> perm_failed
                    '--crash----> sending with an expired lease --> sending (same Message-ID)
(new) --nothing to send--> skipped
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from bot.store.tables import (
    PERM_FAILED,
    SENDING,
    SENT,
    SKIPPED,
    TEMP_FAILED,
    Delivery,
    SentItem,
    as_utc,
)  # fmt: skip

DEFAULT_LEASE = timedelta(minutes=5)


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


class Ledger:
    """Atomic transitions of delivery rows."""

    def __init__(self, engine: Engine, lease: timedelta = DEFAULT_LEASE) -> None:
        self.engine = engine
        self.lease = lease

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def get(
        self, subscriber_id: int, day: date, kind: str = "digest", ref: str = ""
    ) -> Delivery | None:
        """The row for this key, if any."""
        with self._session() as db:
            return db.exec(_key_query(subscriber_id, day, kind, ref)).first()

    def digests_on(self, days: Sequence[date]) -> dict[tuple[int, date], Delivery]:
        """Digest rows for these dates, by (subscriber id, date)."""
        with self._session() as db:
            query = select(Delivery).where(
                Delivery.kind == "digest", col(Delivery.digest_date).in_(list(days))
            )
            return {(r.subscriber_id, r.digest_date): r for r in db.exec(query).all()}

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
        UPDATE when its lease expired (crash: same Message-ID and papers), when it failed
        temporarily and is due (or ``retry_now``), or when ``force`` asks for a deliberate resend.
        """
        stamp = as_utc(now)
        row = Delivery(
            subscriber_id=subscriber_id, kind=kind, digest_date=day, ref=ref, status=SENDING,
            message_id=new_message_id(), paper_ids=list(paper_ids), attempts=1,
            lease_until=stamp + self.lease, created_at=stamp, updated_at=stamp,
        )  # fmt: skip
        with self._session() as db:
            try:
                db.add(row)
                db.commit()
                assert row.id is not None
                return Claim(
                    row.id, subscriber_id, row.message_id or "", tuple(paper_ids), 1, False
                )
            except IntegrityError:
                db.rollback()
        existing = self.get(subscriber_id, day, kind, ref)
        if existing is None:
            return None
        return self._take_over(existing, stamp, paper_ids, new_message_id, retry_now, force)

    def _take_over(
        self,
        row: Delivery,
        stamp: datetime,
        paper_ids: Sequence[str],
        new_message_id: Callable[[], str],
        retry_now: bool,
        force: bool,
    ) -> Claim | None:
        crashed = row.status == SENDING and row.lease_until is not None and row.lease_until < stamp
        due = row.status == TEMP_FAILED and (
            retry_now or row.next_attempt_at is None or row.next_attempt_at <= stamp
        )
        forced = force and row.status != SENDING
        if not (crashed or due or forced):
            return None
        message_id = new_message_id() if forced else (row.message_id or new_message_id())
        papers = list(paper_ids) if forced or not row.paper_ids else list(row.paper_ids)
        values: dict[str, Any] = {
            "status": SENDING, "message_id": message_id, "paper_ids": papers,
            "attempts": row.attempts + 1, "lease_until": stamp + self.lease, "updated_at": stamp,
        }  # fmt: skip
        guard = update(Delivery).where(
            col(Delivery.id) == row.id,
            col(Delivery.status) == row.status,
            col(Delivery.updated_at) == row.updated_at,
        )
        with self._session() as db:
            won = db.exec(guard.values(**values)).rowcount == 1  # type: ignore[call-overload]
            db.commit()
        if not won:
            return None
        assert row.id is not None
        return Claim(
            row.id, row.subscriber_id, message_id, tuple(papers), row.attempts + 1,
            resumed=crashed, forced=forced,
        )  # fmt: skip

    def mark_sent(self, claim: Claim, now: datetime) -> None:
        """The server accepted the message: record it and its papers in one transaction."""
        stamp = as_utc(now)
        with self._session() as db:
            row = db.get(Delivery, claim.delivery_id)
            assert row is not None
            row.status, row.sent_at, row.updated_at, row.lease_until = SENT, stamp, stamp, None
            row.last_code, row.last_error, row.next_attempt_at = None, None, None
            db.add(row)
            known = set(
                db.exec(
                    select(SentItem.paper_id).where(SentItem.subscriber_id == claim.subscriber_id)
                ).all()
            )
            for paper_id in dict.fromkeys(claim.paper_ids):
                if paper_id not in known:
                    db.add(SentItem(subscriber_id=claim.subscriber_id, paper_id=paper_id,
                                    delivery_id=claim.delivery_id, sent_at=stamp))  # fmt: skip
            db.commit()

    def mark_failed(
        self,
        claim: Claim,
        now: datetime,
        *,
        error: str,
        code: int | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record a failure: temporary when ``retry_at`` is given, permanent otherwise."""
        stamp = as_utc(now)
        with self._session() as db:
            row = db.get(Delivery, claim.delivery_id)
            assert row is not None
            row.status = TEMP_FAILED if retry_at is not None else PERM_FAILED
            row.next_attempt_at = as_utc(retry_at) if retry_at is not None else None
            row.last_code, row.last_error = code, error[:1000]
            row.updated_at, row.lease_until = stamp, None
            db.add(row)
            db.commit()

    def release(self, claim: Claim, now: datetime) -> None:
        """Give a claimed row back untouched (shutdown before sending): retry at the next sweep."""
        stamp = as_utc(now)
        with self._session() as db:
            row = db.get(Delivery, claim.delivery_id)
            if row is not None and row.status == SENDING:
                row.status, row.next_attempt_at, row.lease_until = TEMP_FAILED, stamp, None
                row.attempts, row.updated_at = max(row.attempts - 1, 0), stamp
                row.last_error = "released before sending (shutdown)"
                db.add(row)
                db.commit()

    def record_skipped(self, subscriber_id: int, day: date, now: datetime, reason: str) -> bool:
        """Record that nothing was sent on purpose; False when the key already has a row."""
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
                return False

    def due_retries(self, now: datetime) -> list[Delivery]:
        """Temporary failures whose next attempt time has come, and expired ``sending`` leases."""
        stamp = as_utc(now)
        with self._session() as db:
            query = select(Delivery).where(
                ((col(Delivery.status) == TEMP_FAILED) & (col(Delivery.next_attempt_at) <= stamp))
                | ((col(Delivery.status) == SENDING) & (col(Delivery.lease_until) < stamp))
            )
            return list(db.exec(query).all())

    def counts(self, since: date | None = None) -> list[tuple[date, str, int]]:
        """Deliveries by date and state, newest date first."""
        with self._session() as db:
            query = select(Delivery.digest_date, Delivery.status, func.count()).group_by(
                col(Delivery.digest_date), col(Delivery.status)
            )
            if since is not None:
                query = query.where(col(Delivery.digest_date) >= since)
            rows = db.exec(query.order_by(col(Delivery.digest_date).desc())).all()
            return [(d, s, n) for d, s, n in rows]


def _key_query(subscriber_id: int, day: date, kind: str, ref: str) -> Any:
    return select(Delivery).where(
        Delivery.subscriber_id == subscriber_id,
        Delivery.digest_date == day,
        Delivery.kind == kind,
        Delivery.ref == ref,
    )
