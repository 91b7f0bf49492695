"""Reading the delivery ledger: rows by key and date, due retries, tallies for ``status``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.store.runs import process_exists, this_machine
from bot.store.tables import (
    IN_LIST_LIMIT,
    PERM_FAILED,
    SENDING,
    SENT,
    TEMP_FAILED,
    Delivery,
    as_utc,
)


class DeliveryQueries:
    """Read-only queries over the ``deliveries`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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

    def latest_digests(self) -> dict[int, date]:
        """The date of each subscriber's latest digest row (sent, skipped or otherwise), for
        those who have one."""
        query = (
            select(Delivery.subscriber_id, func.max(Delivery.digest_date))
            .where(Delivery.kind == "digest")
            .group_by(col(Delivery.subscriber_id))
        )
        with self._session() as db:
            return {sid: day for sid, day in db.exec(query).all()}

    def unsent_rows(self, subscriber_ids: Collection[int], since: date) -> list[Delivery]:
        """The digest rows of these subscribers from ``since`` on that hold papers not sent:
        being sent, waiting for a retry, or failed for good; and their alert rows being sent."""
        unsent = col(Delivery.status).in_([SENDING, TEMP_FAILED, PERM_FAILED])
        query = select(Delivery).where(
            col(Delivery.digest_date) >= since,
            ((col(Delivery.kind) == "digest") & unsent)
            | ((col(Delivery.kind) == "alert") & (col(Delivery.status) == SENDING)),
        )
        if len(subscriber_ids) <= IN_LIST_LIMIT:
            query = query.where(col(Delivery.subscriber_id).in_(list(subscriber_ids)))
        with self._session() as db:
            return [
                row
                for row in db.exec(query).all()
                if row.paper_ids and row.subscriber_id in subscriber_ids
            ]

    def sent_by(self, process: dict[str, Any], since: datetime) -> int:
        """How many messages ``process`` (as ``bot.store.runs.this_process`` describes one)
        claimed and recorded sent from ``since`` on: the count of a run still going, or killed
        before it could write its own."""
        query = select(Delivery.claimed_by).where(
            Delivery.status == SENT, col(Delivery.sent_at) >= as_utc(since)
        )
        with self._session() as db:
            return sum(1 for claimed in db.exec(query) if claimed == process)

    def alert_rows(
        self, subscriber_ids: Sequence[int], since: date
    ) -> dict[tuple[int, str], Delivery]:
        """Alert rows from ``since`` on, by (subscriber id, paper id) for each paper a row holds.

        An alert row's date is the latest list date of its papers, so the rows of every paper
        listed from ``since`` on are among them.
        """
        query = select(Delivery).where(
            Delivery.kind == "alert",
            col(Delivery.digest_date) >= since,
            col(Delivery.subscriber_id).in_(list(subscriber_ids)),
        )
        with self._session() as db:
            rows = db.exec(query).all()
        return {(r.subscriber_id, paper): r for r in rows for paper in r.paper_ids}

    def due_retries(self, now: datetime) -> list[Delivery]:
        """Temporary failures whose next attempt time has come, and ``sending`` rows left
        behind (see ``Delivery.left_behind``)."""
        stamp, here = as_utc(now), this_machine()
        with self._session() as db:
            query = select(Delivery).where(
                ((col(Delivery.status) == TEMP_FAILED) & (col(Delivery.next_attempt_at) <= stamp))
                | (col(Delivery.status) == SENDING)
            )
            rows = db.exec(query).all()
        return [
            row for row in rows
            if row.status == TEMP_FAILED or row.left_behind(stamp, here, process_exists)
        ]  # fmt: skip

    def tally(self, since: date | None = None) -> list[tuple[date, str, str, int]]:
        """(date, kind, state, count) of every delivery row, newest date first."""
        day, kind, status = (
            col(Delivery.digest_date), col(Delivery.kind), col(Delivery.status)
        )  # fmt: skip
        query = sa_select(day, kind, status, func.count()).group_by(day, kind, status)
        if since is not None:
            query = query.where(day >= since)
        with self._session() as db:
            rows = db.connection().execute(query.order_by(day.desc(), kind, status)).all()
        return [(d, k, s, n) for d, k, s, n in rows]

    def counts(self, since: date | None = None) -> list[tuple[date, str, int]]:
        """Deliveries by date and state (all kinds together), newest date first."""
        totals: dict[tuple[date, str], int] = {}
        for day, _kind, state, n in self.tally(since):
            totals[day, state] = totals.get((day, state), 0) + n
        return [(day, state, n) for (day, state), n in totals.items()]


def key_clause(subscriber_id: int, day: date, kind: str, ref: str) -> tuple[Any, ...]:
    return (
        col(Delivery.subscriber_id) == subscriber_id,
        col(Delivery.digest_date) == day,
        col(Delivery.kind) == kind,
        col(Delivery.ref) == ref,
    )


def _key_query(subscriber_id: int, day: date, kind: str, ref: str) -> SelectOfScalar[Delivery]:
    return select(Delivery).where(*key_clause(subscriber_id, day, kind, ref))
