"""Alerts to the admin (PAPERBOT_ADMIN_EMAIL): what happened and what to do, hourly at most."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from email.headerregistry import Address

from bot.errors import DeliveryError
from bot.mailer import Mailer
from bot.message import Envelope, Outgoing, build_message, new_message_id
from bot.settings import Settings

log = logging.getLogger(__name__)

KINDS = {
    "source": "A paper source is failing",
    "smtp": "Email delivery is stopped",
    "failures": "Many deliveries failed",
    "profiles": "The profiles file was rejected",
}


class AdminAlerts:
    """Rate-limited notes to the admin; always logged, emailed when an admin address is set."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        interval: timedelta = timedelta(hours=1),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.interval = interval
        self.last: dict[str, datetime] = {}

    def _due(self, kind: str) -> bool:
        last = self.last.get(kind)
        return last is None or self.clock() - last >= self.interval

    def message(self, kind: str, what: str, todo: str) -> Outgoing:
        """The plain-text email for one alert."""
        sender = self.settings.sender
        envelope = Envelope(
            sender=sender,
            recipient=Address(addr_spec=self.settings.admin_email or ""),
            message_id=new_message_id(sender),
            date=self.clock(),
        )
        text = f"What happened:\n{what}\n\nWhat to do:\n{todo}\n\n-- paperbot\n"
        return build_message(envelope, f"[paperbot] {KINDS.get(kind, kind)}", text)

    async def notify(self, mailer: Mailer | None, kind: str, what: str, todo: str) -> bool:
        """Log the alert and email it unless one of this kind went out within the interval."""
        log.error("admin alert (%s): %s | %s", kind, what.replace("\n", " "), todo)
        if not self._due(kind):
            return False
        self.last[kind] = self.clock()
        if not self.settings.admin_email or mailer is None:
            return False
        try:
            await mailer.send(self.message(kind, what, todo))
        except DeliveryError as exc:
            log.error("could not email the admin alert: %s", exc)
            return False
        return True
