"""When messages refused in a row blame the server rather than the messages or addresses (pure).

A server refusing every message, or a relay refusing every mailbox of the domains it does not
serve, refuses them in a row with the same reply; the dead addresses of a list are spread
among the others, or come in rows at one domain that is gone. ``bot.delivery`` stops a run on
such a row (and retries a small run refused throughout); ``bot.worker`` undoes the
suppressions of a row that went on sweep after sweep, one digest at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from bot.models import Subscriber

__all__ = [
    "FEW_DOMAINS_IN_ROW",
    "MAILBOX_DOMAINS",
    "REFUSALS_IN_ROW",
    "blames_server",
    "domains_of",
]

MAILBOX_DOMAINS = 3
"""Recipient domains a row of refused mailboxes must span to stop a run (or, in a small run
refused throughout, to be retried rather than recorded): the dead addresses of one domain that
is gone come in rows, while a relay that serves other domains only refuses every address."""
FEW_DOMAINS_IN_ROW = 20
"""When the subscribers have fewer than ``MAILBOX_DOMAINS`` domains in all (one company's
list), the refused mailboxes in a row that blame the server instead, at every one of them: such
a list does not hold 20 dead addresses in a row, but its relay can refuse them all. (A run
refused throughout blames the server from ``REFUSALS_IN_ROW`` on.)"""
REFUSALS_IN_ROW = 5
"""Messages refused in a row with the same permanent reply (the same code and enhanced status:
spam, a policy, or the mailbox, as from a relay that serves other domains only) before the run
stops."""


def domain_of(email: str) -> str:
    """The domain of an address, in lower case."""
    return email.rpartition("@")[2].lower()


def blames_server(refused: Collection[str], listed: int | None, *, whole: bool = False) -> bool:
    """Whether the mailboxes ``refused`` in a row the same way (their addresses) blame the
    server rather than the addresses: at ``MAILBOX_DOMAINS`` domains or more; or, when the
    subscribers have fewer (``listed``, when known), at all of them and ``FEW_DOMAINS_IN_ROW``
    in a row (``REFUSALS_IN_ROW`` when they were the ``whole`` run)."""
    domains = len({domain_of(email) for email in refused})
    if domains >= MAILBOX_DOMAINS:
        return True
    enough = REFUSALS_IN_ROW if whole else FEW_DOMAINS_IN_ROW
    return listed is not None and domains >= listed and len(refused) >= enough


def domains_of(subscribers: Iterable[Subscriber]) -> int:
    """How many recipient domains ``subscribers`` have (see ``MAILBOX_DOMAINS``)."""
    return len({domain_of(s.email) for s in subscribers})
