"""Delivery backends: SMTP through aiosmtplib, or an outbox directory. Knows nothing of papers.

Both implement ``Mailer``: ``await mailer.send(message)`` returns when the message was accepted and
raises a DeliveryError subclass saying whether to retry, give up on the recipient, stop the run,
or (connection lost after the data went out) that nobody knows whether it arrived.

``SmtpMailer`` keeps a pool of ``connections`` SMTP connections, each reused for many messages;
``concurrency`` tells a caller how many sends may usefully run at once.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from types import TracebackType
from typing import Protocol, Self

import aiosmtplib

from bot.errors import (
    ConnectionDeliveryError,
    DeliveryError,
    FatalDeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    UnknownOutcomeError,
)
from bot.message import Outgoing

__all__ = ["Mailer", "SmtpMailer", "classify", "classify_reply"]

TEMPORARY_5XX = {552}  # "mailbox full / exceeded storage": worth another try later
AUTH_CODES = {530, 534, 535, 538}
_BARE_NEWLINE = re.compile(rb"(?<!\r)\n|\r(?!\n)")


class Mailer(Protocol):
    """Something that can deliver an Outgoing message."""

    description: str
    concurrency: int

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def send(self, message: Outgoing) -> None:
        """Deliver one message or raise a DeliveryError subclass."""


def classify_reply(code: int, text: str) -> DeliveryError:
    """The DeliveryError an SMTP reply code means for this recipient."""
    detail = f"{code} {text}".strip()
    if code in AUTH_CODES:
        return FatalDeliveryError(f"SMTP authentication failed: {detail}", code)
    if 400 <= code < 500 or code in TEMPORARY_5XX:
        return TemporaryDeliveryError(f"temporarily refused: {detail}", code)
    return PermanentDeliveryError(f"refused: {detail}", code)


def classify(exc: Exception) -> DeliveryError:
    """Map an aiosmtplib or socket error raised before the message data onto retry/give up/stop."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify_reply(first.code, first.message)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return FatalDeliveryError(f"SMTP authentication failed: {exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused) and exc.code >= 500:
        return FatalDeliveryError(f"SMTP server refused the sender: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError):
        return ConnectionDeliveryError(f"connection refused: {exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(exc.code, exc.message)
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPNotSupported) or "STARTTLS" in str(exc):
        return FatalDeliveryError(f"SMTP TLS failed: {exc}")
    return ConnectionDeliveryError(f"connection problem: {exc or type(exc).__name__}")


def data_payload(raw: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ending with ``.CRLF``."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:  # quicker than the regex when clean
        raw = _BARE_NEWLINE.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    if raw.startswith(b"."):
        raw = b"." + raw
    return raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class _Connection:
    """One SMTP connection that survives many messages and reconnects after a drop."""

    def __init__(self, options: dict[str, object], login: tuple[str, str] | None) -> None:
        self._options, self._login = options, login
        self._smtp: aiosmtplib.SMTP | None = None
        self._dirty = False  # a refused transaction must be reset before the next MAIL

    async def _open(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            if self._dirty:
                await self._smtp.rset()
                self._dirty = False
            return self._smtp
        smtp = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        try:
            await smtp.connect()
            if self._login:
                await smtp.login(*self._login)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise classify(exc) from exc
        self._smtp, self._dirty = smtp, False
        return smtp

    async def send(self, sender: str, to: str, raw: bytes) -> None:
        """MAIL, RCPT, DATA on this connection; tell a drop before the data from one after."""
        data_sent = False
        try:
            smtp = await self._open()
            await smtp.mail(sender)
            await smtp.rcpt(to)
            reply = await smtp.execute_command(b"DATA")
            if reply.code != 354:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
            assert smtp.protocol is not None
            smtp.protocol.write(data_payload(raw))
            data_sent = True
            reply = await smtp.protocol.read_response(timeout=smtp.timeout)
        except DeliveryError:
            raise
        except aiosmtplib.SMTPResponseException as exc:
            self._after_refusal(exc.code)
            raise classify(exc) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.drop()
            if data_sent:
                raise UnknownOutcomeError(f"connection lost after the message data: {exc}") from exc
            raise classify(exc) from exc
        if reply.code != 250:
            self._after_refusal(reply.code)
            raise classify_reply(reply.code, reply.message)

    def _after_refusal(self, code: int) -> None:
        if code == 421 or self._smtp is None or not self._smtp.is_connected:
            self.drop()
        else:
            self._dirty = True

    def drop(self) -> None:
        """Forget the connection (the next send opens a new one)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        """Say QUIT if still connected."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


class SmtpMailer:
    """A pool of ``connections`` SMTP connections, each reused across messages."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        connections: int = 1,
    ) -> None:
        self.description = f"SMTP {host}:{port} ({security})"
        self.concurrency = max(1, connections)
        options: dict[str, object] = {
            "hostname": host, "port": port, "timeout": timeout, "tls_context": tls_context,
            "use_tls": security == "tls", "start_tls": security == "starttls",
        }  # fmt: skip
        login = (username, password) if username and password else None
        self._all = [_Connection(options, login) for _ in range(self.concurrency)]
        self._idle: asyncio.Queue[_Connection] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def send(self, message: Outgoing) -> None:
        """Send one message on an idle connection of the pool."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for connection in self._all:
                self._idle.put_nowait(connection)
        connection = await self._idle.get()
        try:
            await connection.send(message.sender, message.recipient, message.data)
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        """Say QUIT on every open connection."""
        await asyncio.gather(*(connection.close() for connection in self._all))
        self._idle = None
