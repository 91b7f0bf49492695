"""Alerts to the admin (PAPERBOT_ADMIN_EMAIL): what happened and what to do, hourly at most.

An alert that cannot be emailed (mail is not working) is kept and emailed by ``flush`` once mail
works again; only an alert that went out (or that was not meant to be emailed, as no admin
address is set) counts towards the hourly limit. Once its trouble is over (``resolved``), a kind's
kept alert is dropped and its next alert is emailed at once.

The limit's times are kept in the store (``AlertTimes``) when one is given, so that a worker
restarting again and again does not email the same alert at every start; so are the alerts not
emailed yet, so that a worker restarted while mail does not work still emails them once it does
(``recall_kept``). An alert is claimed there before its email goes out (given back if it does
not), so that workers sharing the database that raise one at the same moment email it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from typing import Protocol

from bot.errors import (
    AuthenticationDeliveryError,
    ConnectionDeliveryError,
    DeliveryError,
    DroppedDeliveryError,
    FatalDeliveryError,
    PermanentDeliveryError,
    RecipientDeliveryError,
    SenderDeliveryError,
    TlsDeliveryError,
    UnknownHostDeliveryError,
    UnknownOutcomeError,
)
from bot.mailer import Mailer
from bot.message import Envelope, Outgoing, build_message, new_message_id
from bot.settings import Settings

log = logging.getLogger(__name__)

KINDS = {
    "source": "A paper source is failing",
    "smtp": "Email delivery is stopped",
    "failures": "Many deliveries failed",
    "profiles": "The profiles file was rejected",
    "removed": "Most subscribers were removed from the profiles",
}


def is_smtp_trouble(error: DeliveryError | None) -> bool:
    """Whether ``error`` means the SMTP server cannot be used now (unreachable, or refusing the
    login, TLS or the sender), rather than a reply about one message or one message's
    connection lost before its data."""
    return isinstance(error, ConnectionDeliveryError | FatalDeliveryError | UnknownOutcomeError)


def smtp_advice(cause: DeliveryError | None) -> str:
    """What the admin can check when sending stopped because of ``cause``."""
    if isinstance(cause, SenderDeliveryError):
        return "Check PAPERBOT_FROM: the SMTP server does not accept it as the sender."
    if isinstance(cause, AuthenticationDeliveryError):
        return "Check PAPERBOT_SMTP_USERNAME / PAPERBOT_SMTP_PASSWORD."
    if isinstance(cause, TlsDeliveryError):
        return (
            "Check PAPERBOT_SMTP_SECURITY and PAPERBOT_SMTP_PORT: they must match what the "
            "server offers (tls on 465, starttls on 587)."
        )
    if isinstance(cause, UnknownHostDeliveryError):
        return "Check PAPERBOT_SMTP_HOST: that name does not exist."
    if isinstance(cause, RecipientDeliveryError):
        return (
            "The SMTP server refuses every recipient's mailbox the same way: check that "
            "PAPERBOT_SMTP_HOST is the server meant to relay this mail (one that serves other "
            "domains only refuses every address), PAPERBOT_FROM, and the server's reply above."
        )
    if isinstance(cause, PermanentDeliveryError):
        return (
            "The SMTP server refuses the messages themselves (their content, or a policy such as "
            "relaying or the sender): check its reply above, PAPERBOT_FROM and the server's rules."
        )
    if isinstance(cause, ConnectionDeliveryError | DroppedDeliveryError | UnknownOutcomeError):
        return (
            "Check PAPERBOT_SMTP_HOST and PAPERBOT_SMTP_PORT, that the SMTP server is up and "
            "reachable from here, and that no firewall blocks the port."
        )
    return "Check the SMTP server's reply above and the PAPERBOT_SMTP_* settings."


@dataclass(slots=True)
class _Alert:
    """An alert not emailed yet: its text, when it was raised, whether an email of it failed."""

    what: str
    todo: str
    raised: datetime
    held: bool = False


RESOLVED_QUIET = timedelta(minutes=10)
"""Least time between two admin alerts of one kind when the trouble was over in between."""


class AlertTimes(Protocol):
    """Where the times of the alerts emailed outlast the process (``bot.store.Store``)."""

    def admin_alert_times(self) -> dict[str, tuple[datetime, datetime]]:
        """By kind: when its last alert was emailed, and when the hourly limit counts from."""
        ...

    def record_admin_alert(self, kind: str, alerted_at: datetime, counts_from: datetime) -> None:
        """Keep those two times of ``kind``."""
        ...

    def claim_admin_alert(self, kind: str, at: datetime, interval: timedelta) -> bool:
        """Record an alert of ``kind`` as emailed at ``at`` unless one went out less than
        ``interval`` before (by another worker): whether this one may be emailed."""
        ...

    def release_admin_alert(
        self, kind: str, at: datetime, before: tuple[datetime, datetime] | None
    ) -> None:
        """Undo the claim made at ``at``: back to the times ``before`` it."""
        ...

    def kept_admin_alerts(self) -> dict[str, tuple[str, str, datetime, bool]]:
        """By kind: the alert not emailed yet (what, what to do, when raised, whether held)."""
        ...

    def keep_admin_alert(
        self, kind: str, what: str, todo: str, raised_at: datetime, held: bool
    ) -> None:
        """Keep the alert of ``kind`` not emailed yet."""
        ...

    def drop_admin_alert(self, kind: str) -> None:
        """Forget the kept alert of ``kind``."""
        ...


class AdminAlerts:
    """Rate-limited notes to the admin; always logged, emailed when an admin address is set."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        interval: timedelta = timedelta(hours=1),
        times: AlertTimes | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.interval = interval
        self.times = times
        self.last: dict[str, datetime] = {}
        """When the rate limit counts the last alert of each kind from (see ``resolved``)."""
        self.alerted: dict[str, datetime] = {}
        """When the last alert of each kind went out."""
        self.pending: dict[str, _Alert] = {}
        """The newest alert of each kind that could not be emailed yet."""

    def _recall(self, kind: str) -> None:
        """Take up the times of the last alert of ``kind`` kept in ``times`` when they are later
        than this process knows: emailed before a restart, or by another worker sharing the
        database."""
        stored = self.times.admin_alert_times().get(kind) if self.times is not None else None
        if stored is not None and (kind not in self.last or stored[1] > self.last[kind]):
            self.alerted[kind], self.last[kind] = stored

    def _counted(self, kind: str) -> None:
        """Keep the limit's times of ``kind`` in ``times``, for a restarted process."""
        if self.times is not None:
            self.times.record_admin_alert(kind, self.alerted[kind], self.last[kind])

    def _kept(self, kind: str) -> None:
        """Keep the pending alert of ``kind`` in ``times`` (or forget it there once it is no
        longer pending), for a restarted process."""
        if self.times is None:
            return
        alert = self.pending.get(kind)
        if alert is None:
            self.times.drop_admin_alert(kind)
        else:
            self.times.keep_admin_alert(kind, alert.what, alert.todo, alert.raised, alert.held)

    def recall_kept(self) -> None:
        """Take up the alerts kept in ``times`` by an earlier process (mail did not work before
        it stopped): the next ``flush`` emails them. Without an admin address they are dropped."""
        if self.times is None:
            return
        for kind, (what, todo, raised, held) in self.times.kept_admin_alerts().items():
            if not self.settings.admin_email:
                self.times.drop_admin_alert(kind)
            elif kind not in self.pending:
                self.pending[kind] = _Alert(what, todo, raised, held=held)
                log.info("admin alert (%s) not emailed before this start: it is sent once mail "
                         "works", kind)  # fmt: skip

    def _due(self, kind: str) -> bool:
        self._recall(kind)
        last = self.last.get(kind)
        return last is None or self.clock() - last >= self.interval

    def message(self, kind: str, what: str, todo: str, note: str = "") -> Outgoing:
        """The plain-text email for one alert (``note``: a line after what to do)."""
        sender = self.settings.sender
        envelope = Envelope(
            sender=sender,
            recipient=Address(addr_spec=self.settings.admin_email or ""),
            message_id=new_message_id(sender),
            date=self.clock(),
        )
        parts = [f"What happened:\n{what}", f"What to do:\n{todo}", note, "-- paperbot\n"]
        text = "\n\n".join(part for part in parts if part)
        return build_message(envelope, f"[paperbot] {KINDS.get(kind, kind)}", text)

    async def notify(self, mailer: Mailer | None, kind: str, what: str, todo: str) -> bool:
        """Log the alert and email it unless one of this kind went out within the interval.

        Without a ``mailer`` (mail is known not to work) the alert is kept for ``flush``, as is
        one whose email fails. A repeat (throttled, or one of this kind is still kept) is
        logged at info level only; a kept alert takes the newest wording.
        """
        if not self._raise(kind, what, todo, held=mailer is None) or mailer is None:
            return False
        return await self._email(mailer, kind) is None

    def keep(self, kind: str, what: str, todo: str) -> None:
        """Log the alert and keep it for the next ``flush``: for one raised before any mail is
        sent (at start-up), as ``notify`` would with a mailer, rate limit and all."""
        self._raise(kind, what, todo, held=False)

    def _raise(self, kind: str, what: str, todo: str, *, held: bool) -> bool:
        """Log the alert; whether it is kept to be emailed (not a repeat, and an admin address
        is set). ``held``: mail is known not to work (the email says it was held back)."""
        flat = f"{what.replace(chr(10), ' ')} | {todo}"
        kept = self.pending.get(kind)
        if kept is not None or not self._due(kind):
            log.info("admin alert (%s) again: %s", kind, flat)
            if kept is not None and (kept.what, kept.todo) != (what, todo):
                kept.what, kept.todo = what, todo
                self._kept(kind)
            return False
        log.error("admin alert (%s): %s", kind, flat)
        if not self.settings.admin_email:
            self.last[kind] = self.alerted[kind] = self.clock()
            return False
        self.pending[kind] = _Alert(what, todo, self.clock(), held=held)
        self._kept(kind)
        return True

    def resolved(self, kind: str) -> None:
        """The trouble of ``kind`` is over: drop its kept alert (it tells of what no longer
        holds), and let the next alert of that kind be emailed sooner: ``RESOLVED_QUIET`` after
        the last one rather than the whole interval (a file that keeps going bad and good again
        does not email at every change)."""
        if self.pending.pop(kind, None) is not None:
            log.info("admin alert (%s) no longer applies; it is not emailed", kind)
            self._kept(kind)
        self._recall(kind)
        if kind in self.last:
            sooner = self.alerted[kind] - self.interval + RESOLVED_QUIET
            if sooner != self.last[kind]:
                self.last[kind] = sooner
                self._counted(kind)

    async def flush(self, mailer: Mailer, later: Container[str] = ()) -> DeliveryError | None:
        """Email the kept alerts but those of the kinds named ``later``; the error that kept the
        rest from going out, if one did (an alert refused for good is dropped, and the others
        still go)."""
        for kind in [kind for kind in self.pending if kind not in later]:
            error = await self._email(mailer, kind)
            if error is not None and not isinstance(error, PermanentDeliveryError):
                return error
        return None

    async def _email(self, mailer: Mailer, kind: str) -> DeliveryError | None:
        """Email the kept alert of ``kind``: None once it went out, else why not. An alert the
        server refuses for good is dropped; after any other failure it stays kept."""
        alert = self.pending[kind]
        self._recall(kind)
        if alert.raised < self.alerted.get(kind, alert.raised):  # by another worker, since
            del self.pending[kind]
            self._kept(kind)
            return None
        at = self.clock()
        before = (self.alerted[kind], self.last[kind]) if kind in self.alerted else None
        if self.times is not None and not self.times.claim_admin_alert(kind, at, self.interval):
            # another worker sharing the database raised it at the same moment and emails it
            del self.pending[kind]
            self._kept(kind)
            self._recall(kind)
            log.info("admin alert (%s) emailed by another worker", kind)
            return None
        note = ""
        if alert.held:
            raised = alert.raised.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            note = f"(Raised at {raised}; held back until email could be sent again.)"
        try:
            await mailer.send(self.message(kind, alert.what, alert.todo, note))
        except PermanentDeliveryError as exc:
            self._unclaim(kind, at, before)
            del self.pending[kind]
            self._kept(kind)
            log.error("the admin alert (%s) was refused and is dropped: %s", kind, exc)
            return exc
        except DeliveryError as exc:
            self._unclaim(kind, at, before)
            if not alert.held:
                log.warning("could not email the admin alert (it is sent once mail works): %s", exc)
                alert.held = True
            self._kept(kind)  # kept again: a worker that found it claimed dropped it meanwhile
            return exc
        except BaseException:  # cancelled mid-send (the worker stops): it is sent after a start
            self._unclaim(kind, at, before)
            raise
        del self.pending[kind]
        self._kept(kind)
        self.last[kind] = self.alerted[kind] = at
        self._counted(kind)
        return None

    def _unclaim(self, kind: str, at: datetime, before: tuple[datetime, datetime] | None) -> None:
        """The email of ``kind`` claimed at ``at`` did not go out: it does not count."""
        if self.times is not None:
            self.times.release_admin_alert(kind, at, before)
