"""The admin alerts tables: when the last alert of each kind was emailed, so that the hourly
limit of ``bot.admin.AdminAlerts`` holds across restarts of the worker, and the alerts not
emailed yet, so that a restart does not lose them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from bot.store.tables import AdminAlertRow, KeptAdminAlertRow, as_utc


class AdminAlertLog:
    """Reads and records the times of the admin alerts emailed (see ``AdminAlertRow``)."""

    engine: Engine

    def admin_alert_times(self) -> dict[str, tuple[datetime, datetime]]:
        """By kind: when its last alert was emailed, and when the hourly limit counts from."""
        with Session(self.engine) as db:
            rows = db.exec(select(AdminAlertRow)).all()
            return {r.kind: (as_utc(r.alerted_at), as_utc(r.counts_from)) for r in rows}

    def record_admin_alert(self, kind: str, alerted_at: datetime, counts_from: datetime) -> None:
        """Keep those two times of ``kind``. Two workers recording the first alert of a kind at
        once: the loser of the race on the key updates the row the winner wrote."""
        for attempt in range(2):
            try:
                with Session(self.engine) as db:
                    row = db.get(AdminAlertRow, kind) or AdminAlertRow(
                        kind=kind, alerted_at=alerted_at, counts_from=counts_from
                    )
                    row.alerted_at, row.counts_from = as_utc(alerted_at), as_utc(counts_from)
                    db.add(row)
                    db.commit()
                return
            except IntegrityError:
                if attempt:
                    raise

    def claim_admin_alert(self, kind: str, at: datetime, interval: timedelta) -> bool:
        """Take the emailing of an alert of ``kind`` at ``at``, recording it as emailed then:
        False when one went out less than ``interval`` before (as its limit counts), as when two
        workers sharing the database raise the same alert at once: one of them emails it.
        ``release_admin_alert`` gives the claim back when the email did not go out."""
        stamp = as_utc(at)
        try:
            with Session(self.engine) as db:
                db.add(AdminAlertRow(kind=kind, alerted_at=stamp, counts_from=stamp))
                db.commit()
            return True
        except IntegrityError:  # one of this kind was emailed before: its limit decides
            pass
        with Session(self.engine) as db:
            taken = db.exec(
                update(AdminAlertRow)
                .where(
                    col(AdminAlertRow.kind) == kind,
                    col(AdminAlertRow.counts_from) <= as_utc(at - interval),
                )
                .values(alerted_at=stamp, counts_from=stamp)
            )
            db.commit()
            return bool(taken.rowcount == 1)

    def release_admin_alert(
        self, kind: str, at: datetime, before: tuple[datetime, datetime] | None
    ) -> None:
        """Undo the claim of ``kind`` made at ``at`` (its email did not go out): back to the
        times ``before`` it (or none), unless another worker claimed one since."""
        with Session(self.engine) as db:
            ours = (col(AdminAlertRow.kind) == kind) & (col(AdminAlertRow.alerted_at) == as_utc(at))
            if before is None:
                db.exec(delete(AdminAlertRow).where(ours))
            else:
                alerted, counts_from = (as_utc(moment) for moment in before)
                back = update(AdminAlertRow).where(ours)
                db.exec(back.values(alerted_at=alerted, counts_from=counts_from))
            db.commit()

    def kept_admin_alerts(self) -> dict[str, tuple[str, str, datetime, bool]]:
        """By kind: the alert not emailed yet (what, what to do, when raised, whether held)."""
        with Session(self.engine) as db:
            rows = db.exec(select(KeptAdminAlertRow)).all()
            return {r.kind: (r.what, r.todo, as_utc(r.raised_at), r.held) for r in rows}

    def keep_admin_alert(
        self, kind: str, what: str, todo: str, raised_at: datetime, held: bool
    ) -> None:
        """Keep the alert of ``kind`` not emailed yet (replacing the one kept before)."""
        with Session(self.engine) as db:
            row = db.get(KeptAdminAlertRow, kind) or KeptAdminAlertRow(
                kind=kind, what=what, todo=todo, raised_at=as_utc(raised_at)
            )
            row.what, row.todo, row.raised_at, row.held = what, todo, as_utc(raised_at), held
            db.add(row)
            try:
                db.commit()
            except IntegrityError:  # another worker kept one of that kind at this very moment
                db.rollback()

    def drop_admin_alert(self, kind: str) -> None:
        """Forget the kept alert of ``kind``: it was emailed, or no longer applies."""
        with Session(self.engine) as db:  # a statement: another worker may drop it first
            db.exec(delete(KeptAdminAlertRow).where(col(KeptAdminAlertRow.kind) == kind))
            db.commit()
