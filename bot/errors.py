"""Every error paperbot raises on purpose.

BotError                 anything the CLI turns into a clear message and an exit code
├── ConfigError          a bad setting (exit 2)
├── UsageError           a command line asking for something impossible (exit 2)
├── ProfileError         a bad profiles file; carries every problem with file and line (exit 2)
├── SourceError          a paper source failed or answered in a shape we do not understand
└── DeliveryError        a message could not be handed to SMTP or the outbox
    ├── TemporaryDeliveryError   worth retrying later (4xx, 552, connection trouble)
    │   ├── ConnectionDeliveryError  the connection could not be opened: the server cannot be used
    │   └── DroppedDeliveryError     lost during one message's transaction, before its data
    ├── PermanentDeliveryError   never retry this message (other 5xx)
    │   ├── RecipientDeliveryError   the recipient's mailbox is refused: mail it no more
    │   └── UnwritableDeliveryError  a message to send again as it was can no longer be written
    ├── FatalDeliveryError       every message would fail: stop the run
    │   ├── AuthenticationDeliveryError  the server refused the login
    │   ├── TlsDeliveryError             TLS could not be set up
    │   ├── SenderDeliveryError          the server refused the sender address
    │   └── UnknownHostDeliveryError     the SMTP host name does not exist
    └── UnknownOutcomeError      the connection was lost after the message data was sent

``no_such_host`` tells, of an error from a library (an HTTP or SMTP client), whether a host name
it looked up does not exist; ``caused_by`` finds the error of a kind behind a library's own.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from typing import TypeVar

E = TypeVar("E", bound=BaseException)

_NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class BotError(Exception):
    """Base of every expected failure; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(BotError):
    """One or more settings are invalid."""

    exit_code = 2


class UsageError(BotError):
    """An option names something that cannot be used: a file that cannot be written, a busy port."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a profiles file, located as precisely as the file allows.

    ``section`` names a part of the file that is not a subscriber (``defaults``); ``column`` is
    known for YAML syntax errors.
    """

    file: str
    line: int | None
    subscriber: str | None
    field: str | None
    message: str
    column: int | None = dataclasses.field(default=None, kw_only=True)
    section: str | None = dataclasses.field(default=None, kw_only=True)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        parts = [where]
        if self.section:
            parts.append(self.section)
        if self.subscriber:
            parts.append(f"subscriber {self.subscriber}")
        if self.field:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)


class ProfileError(BotError):
    """The profiles file is invalid; ``problems`` lists every one found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} {noun} in profiles:\n{lines}")


class SourceError(BotError):
    """A source could not deliver a paper list (down, or an unexpected shape)."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.detail = message
        """What went wrong, without the source's name (where that is said already)."""
        super().__init__(f"source {source}: {message}")


class DeliveryError(BotError):
    """A message was not accepted; ``code`` is the SMTP reply code and ``status`` its enhanced
    status code (``5.7.1``, RFC 3463) when there is one."""

    def __init__(self, message: str, code: int | None = None, status: str | None = None) -> None:
        self.code, self.status = code, status
        super().__init__(message)


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later: 4xx replies, 552, dropped or refused connections."""


class PermanentDeliveryError(DeliveryError):
    """The server refused this message for good (5xx other than 552): its content, a policy."""


class RecipientDeliveryError(PermanentDeliveryError):
    """The server refused the recipient's mailbox for good (unknown, disabled): the address is
    suppressed."""


class UnwritableDeliveryError(PermanentDeliveryError):
    """A message to send again exactly as it was (its first attempt may have arrived) can no
    longer be written: a paper it holds is no longer stored. It is not tried again."""


class FatalDeliveryError(DeliveryError):
    """Every message would fail (authentication or TLS): the run must stop."""


class AuthenticationDeliveryError(FatalDeliveryError):
    """The server refused the login, asked for one that is not configured, or offers none for
    the one configured."""


class TlsDeliveryError(FatalDeliveryError):
    """TLS could not be set up with the server (wrong port or security mode, bad certificate)."""


class SenderDeliveryError(FatalDeliveryError):
    """The server refused the sender address (PAPERBOT_FROM): every message would fail."""


class UnknownHostDeliveryError(FatalDeliveryError):
    """The SMTP host name does not exist: trying again cannot help."""


class ConnectionDeliveryError(TemporaryDeliveryError):
    """The connection could not be opened (refused, timed out, no greeting), or the one kept
    open since an earlier message turned out to be closed before the server answered anything
    about this one: open one again (a server that cannot be reached fails this way)."""


class DroppedDeliveryError(TemporaryDeliveryError):
    """The connection was lost (or timed out) during this message's transaction, before its data
    was complete: the server could be reached, and this message failed for now. It says nothing
    about the server being unusable, unlike a ``ConnectionDeliveryError``."""


class UnknownOutcomeError(DeliveryError):
    """The connection was lost once the message data had been sent: it may have arrived.

    The ledger row stays ``sending``; when its lease expires it is sent again with the same
    Message-ID, so a receiving system can tell the two copies apart.
    """


def caused_by(exc: BaseException | None, kind: type[E]) -> E | None:
    """``exc`` itself if it is a ``kind``, or else the first ``kind`` it was raised from or while
    handling: libraries wrap the errors of the calls they make."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def no_such_host(exc: BaseException | None) -> bool:
    """Whether ``exc``, or what it was raised from or while handling, says that a host name does
    not exist: unlike a temporary lookup failure (``EAI_AGAIN``), trying again cannot help.

    Libraries wrap the lookup error either way: aiosmtplib raises its own error from it; httpx
    raises its own from httpcore's, which httpcore raised while handling the lookup error (``from
    None``, which hides it from tracebacks, not from ``__context__``).
    """
    found = caused_by(exc, socket.gaierror)
    return found is not None and found.errno in _NO_SUCH_HOST
