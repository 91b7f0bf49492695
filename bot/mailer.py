"""SMTP delivery through aiosmtplib, and ``Mailer``, what every delivery backend implements.

``SmtpMailer`` and the outbox (``bot.outbox``) are both a ``Mailer``: ``await mailer.send(message)``
returns when the message was accepted and raises a DeliveryError subclass saying whether to retry,
give up on the recipient, stop the run, or (connection lost after the data went out) that nobody
knows whether it arrived. Neither knows anything of papers.

``SmtpMailer`` keeps a pool of ``connections`` SMTP connections, each reused for many messages;
``concurrency`` tells a caller how many sends may usefully run at once. aiosmtplib opens each
session (greeting, EHLO, STARTTLS, AUTH); the mail transactions then run on ``_Wire``, which sends
MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920): two round trips
per message instead of four.

What a reply means for the message, and whether it blames the recipient's mailbox, is
``bot.smtp``'s. A connection lost during a transaction, before its data is complete, fails that
message (``DroppedDeliveryError``). A connection that cannot be opened, or one kept open since
an earlier message that turns out to be closed before the server answered anything in the new
transaction (servers close idle connections), is a ``ConnectionDeliveryError``: the caller opens
a new one, and gives up when none can be opened. A session that cannot set up TLS (the server
offers no STARTTLS, or its port speaks no TLS) is a ``TlsDeliveryError`` saying what to change;
so is a port that sends no greeting in plain text and answers TLS instead (it expects TLS from
the first byte, as 465 does). That is asked once, of a greeting that did not come before any
did; otherwise a greeting that does not come is connection trouble (a server too busy to greet).
A login set up for a server that offers no AUTH is an ``AuthenticationDeliveryError`` saying what
to change. No reply within the timeout is said as such, with the setting that sets it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from types import TracebackType
from typing import Protocol, Self

import aiosmtplib

from bot.errors import (
    AuthenticationDeliveryError,
    ConnectionDeliveryError,
    DeliveryError,
    DroppedDeliveryError,
    SenderDeliveryError,
    TlsDeliveryError,
    UnknownHostDeliveryError,
    UnknownOutcomeError,
    no_such_host,
)
from bot.message import Outgoing
from bot.smtp import (
    COMMANDS,
    EXPECTED,
    NO_AUTH,
    TLS_FIRST,
    Reply,
    classify_reply,
    data_payload,
    envelope_commands,
    tls_failure,
)

__all__ = ["Mailer", "SmtpMailer", "classify"]

MAX_REPLY = 64 * 1024
"""Most bytes of replies waiting to be read: a server sending more is broken or hostile."""


class Mailer(Protocol):
    """Something that can deliver an Outgoing message."""

    description: str
    """Where messages go, e.g. ``SMTP to smtp.example.org:587 (starttls)``."""
    concurrency: int

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def send(self, message: Outgoing) -> None:
        """Deliver one message or raise a DeliveryError subclass."""


def classify(exc: Exception) -> DeliveryError:
    """Map an error opening a session (aiosmtplib or socket) onto retry/give up/stop."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthenticationDeliveryError(
            f"SMTP authentication failed: {exc.code} {exc.message}", exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError):
        return ConnectionDeliveryError(f"connection refused: {exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(exc.code, exc.message)
    tls = tls_failure(exc)
    if tls is not None:
        return tls
    if no_such_host(exc):
        return UnknownHostDeliveryError(f"SMTP server not found (check PAPERBOT_SMTP_HOST): {exc}")
    return ConnectionDeliveryError(f"connection problem: {_reason(exc)}")


def no_greeting(exc: Exception) -> bool:
    """Whether ``exc`` says that a connection was opened and no greeting came in time (aiosmtplib
    raises the same error, from a plain TimeoutError, when the connection itself is not made)."""
    return isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) and isinstance(
        exc.__cause__, aiosmtplib.SMTPTimeoutError
    )


async def answers_tls(host: str, port: int, context: ssl.SSLContext | None, timeout: float) -> bool:
    """Whether ``host:port`` completes a TLS handshake within ``timeout`` (a certificate we do
    not trust is TLS too): asked of a port that sent no greeting in plain text."""
    context = context or await asyncio.to_thread(ssl.create_default_context)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                asyncio.Protocol, host, port, ssl=context, server_hostname=host
            )
    except ssl.SSLCertVerificationError:
        return True
    except (OSError, TimeoutError):
        return False
    transport.abort()
    return True


class _Greeting:
    """What the connections of a pool learnt of how the server's port begins: whether one of
    them was greeted in plain text, and else, once asked, whether the port answers TLS."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None) -> None:
        self.host, self.port, self._context = host, port, context
        self.greeted = False
        self._tls: bool | None = None
        self._asking = asyncio.Lock()

    async def tls_instead(self, timeout: float) -> bool:
        """Whether the port expects TLS from the first byte: never once a greeting came; else
        asked once, the answer kept for every connection."""
        if self.greeted:
            return False
        async with self._asking:
            if self._tls is None:
                self._tls = await answers_tls(self.host, self.port, self._context, timeout)
        return self._tls


def _reason(exc: BaseException) -> str:
    """What ``exc`` says, or its kind when it says nothing (``TimeoutError()``)."""
    return str(exc) or type(exc).__name__


class _Wire(asyncio.Protocol):
    """An open SMTP session: writes commands and hands back the replies in order.

    aiosmtplib reads exactly one reply per command it writes, so it cannot pipeline; once it
    has opened the session, its transport is switched over to this protocol, which queues every
    complete reply as it arrives.
    """

    def __init__(self, transport: asyncio.Transport, timeout: float, pipelining: bool) -> None:
        self._transport, self._timeout, self.pipelining = transport, timeout, pipelining
        self._buffer = bytearray()
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._error: Exception | None = None
        self.received = 0
        """How many replies have arrived on this session."""

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP, timeout: float) -> _Wire:
        """The session ``smtp`` opened (nothing unread on it), now run by a ``_Wire``."""
        transport = smtp.transport
        assert isinstance(transport, asyncio.Transport)
        wire = cls(transport, timeout, smtp.supports_extension("pipelining"))
        transport.set_protocol(wire)
        return wire

    @property
    def is_open(self) -> bool:
        """Whether commands can still be written."""
        return self._error is None and not self._transport.is_closing()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except ConnectionError as exc:
            self._fail(exc)
            self._transport.abort()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done() and len(self._replies) >= self._wanted:
            waiter.set_result(None)

    def _parse(self) -> None:
        """Move each complete reply from the buffer to the queue."""
        start = 0
        while True:
            lines: list[str] = []
            end = start
            while (newline := self._buffer.find(b"\n", end)) >= 0:
                line = bytes(self._buffer[end:newline]).rstrip(b"\r")
                end = newline + 1
                if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                    raise ConnectionError(f"malformed SMTP reply: {line[:80]!r}")
                lines.append(line[4:].decode("utf-8", "replace").strip())
                if line[3:4] != b"-":
                    self._replies.append(Reply(int(line[:3]), "\n".join(lines)))
                    self.received += 1
                    start = end
                    break
            else:
                break
        del self._buffer[:start]
        if len(self._buffer) > MAX_REPLY:
            raise ConnectionError("SMTP reply too long")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))

    def eof_received(self) -> bool:
        return False  # close our end too

    def _fail(self, exc: Exception) -> None:
        self._error = self._error or exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._error)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the server; raises ConnectionError once the session is over."""
        if not self.is_open:
            raise self._error or ConnectionError("connection closed")
        self._transport.write(data)

    async def read(self, count: int) -> list[Reply]:
        """The next ``count`` replies, waiting at most the timeout for each batch."""
        while len(self._replies) < count:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            self._wanted = count
            try:
                async with asyncio.timeout(self._timeout):
                    await self._waiter
            finally:
                self._waiter = None
        return [self._replies.popleft() for _ in range(count)]

    async def exchange(
        self, commands: list[bytes], expected: tuple[tuple[int, ...], ...]
    ) -> list[Reply]:
        """Send ``commands`` and read their replies, up to the first unexpected one.

        Pipelined, every command goes in one write and every reply is read; otherwise each
        command waits for the previous reply, and none is sent after a refusal.
        """
        self._replies.clear()  # replies nobody asked for, such as a notice before a close
        if self.pipelining:
            self.write(b"".join(commands))
            return await self.read(len(commands))
        replies: list[Reply] = []
        for command, ok in zip(commands, expected, strict=True):
            self.write(command)
            replies += await self.read(1)
            if replies[-1].code not in ok:
                break
        return replies

    async def quit(self) -> None:
        """Say QUIT and close, whatever the server answers."""
        try:
            self.write(b"QUIT\r\n")
            await self.read(1)
        except (OSError, TimeoutError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection now."""
        self._transport.close()


class _Connection:
    """One SMTP connection that survives many messages and reconnects after a drop."""

    def __init__(
        self,
        options: dict[str, object],
        login: tuple[str, str] | None,
        timeout: float,
        greeting: _Greeting,
    ) -> None:
        self._options, self._login, self._timeout = options, login, timeout
        self._greeting = greeting
        self._wire: _Wire | None = None
        self._dirty = False  # a refused transaction must be reset before the next MAIL

    async def _open(self) -> _Wire:
        if self._wire is not None and self._wire.is_open:
            if self._dirty:
                (reply,) = await self._wire.exchange([b"RSET\r\n"], ((250,),))
                if reply.code != 250:
                    raise ConnectionError(f"RSET refused: {reply.code} {reply.text}")
                self._dirty = False
            return self._wire
        self.drop()
        smtp = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        try:
            await smtp.connect()
            self._greeting.greeted = True
            if smtp.is_ehlo_or_helo_needed:  # EHLO says whether the server pipelines, offers AUTH
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
            if self._login:
                await self._log_in(smtp, *self._login)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise await self._classify(exc) from exc
        except BaseException:  # cancelled while opening: the half-open session is closed too
            smtp.close()
            raise
        self._wire, self._dirty = _Wire.take_over(smtp, self._timeout), False
        return self._wire

    @staticmethod
    async def _log_in(smtp: aiosmtplib.SMTP, username: str, password: str) -> None:
        """Log in, or say what to change when the server offers no AUTH."""
        if not smtp.supports_extension("auth"):
            encrypted = smtp.get_transport_info("sslcontext") is not None
            raise AuthenticationDeliveryError(f"SMTP authentication failed: {NO_AUTH[encrypted]}")
        await smtp.login(username, password)

    async def _classify(self, exc: Exception) -> DeliveryError:
        """``classify`` for an error opening the session; a greeting that did not come is
        connection trouble, unless the port answers TLS instead (see ``_Greeting``)."""
        if not no_greeting(exc):
            return classify(exc)
        if not self._options["use_tls"] and await self._greeting.tls_instead(self._timeout):
            text = TLS_FIRST.format(timeout=self._timeout, port=self._greeting.port)
            return TlsDeliveryError(f"SMTP TLS failed: {text}")
        return ConnectionDeliveryError(
            f"connection problem: no greeting within {self._timeout:g} s (PAPERBOT_SMTP_TIMEOUT)"
        )

    async def send(self, message: Outgoing) -> None:
        """MAIL, RCPT, DATA on this connection. A connection that cannot be opened (or reset)
        says the server cannot be used; one lost during the transaction fails this message
        before the data is complete, and leaves its outcome unknown after. A connection kept
        from an earlier message that is found lost before the server answered anything in this
        transaction had died meanwhile: one to open again, not this message's failure."""
        commands = envelope_commands(message.sender, message.recipient)
        kept = self._wire is not None and self._wire.is_open
        wire: _Wire | None = None
        seen, data_sent = 0, False
        try:
            wire = await self._open()
            seen = wire.received  # the replies before this transaction
            replies = await wire.exchange(commands, EXPECTED)
            refused = self._refusal(replies)
            if refused is not None:
                if len(replies) == len(commands) and replies[-1].code == 354:
                    wire.write(b".\r\n")  # DATA was accepted after a refusal: send nothing
                    await wire.read(1)
                raise refused
            wire.write(data_payload(message.data, message.transparent))
            data_sent = True
            (reply,) = await wire.read(1)
        except DeliveryError:
            raise
        except asyncio.CancelledError:  # mid-exchange: its replies would answer the next one
            self.drop()
            raise
        except (OSError, TimeoutError) as exc:
            self.drop()
            if data_sent:
                raise UnknownOutcomeError(self._lost(exc, "after the message data")) from exc
            if wire is not None and (not kept or wire.received > seen):
                raise DroppedDeliveryError(self._lost(exc, "before the data")) from exc
            if isinstance(exc, TimeoutError):  # a connection kept open that no longer answers
                raise ConnectionDeliveryError(self._lost(exc, "on a connection kept open")) from exc
            raise classify(exc) from exc
        if reply.code != 250:
            self._after_refusal(reply.code)
            raise classify_reply(reply.code, reply.text, "DATA")

    def _lost(self, exc: OSError, when: str) -> str:
        """What ended a transaction ``when`` (``before the data``): no reply in time (and the
        setting that says how long to wait), or the connection lost, and why."""
        if isinstance(exc, TimeoutError):
            return f"no reply within {self._timeout:g} s (PAPERBOT_SMTP_TIMEOUT) {when}"
        return f"connection lost {when}: {_reason(exc)}"

    def _refusal(self, replies: list[Reply]) -> DeliveryError | None:
        """The error for the first envelope reply that refused, if one did."""
        for n, (reply, ok) in enumerate(zip(replies, EXPECTED, strict=False)):
            if reply.code in ok:
                continue
            self._after_refusal(reply.code)
            if n == 0 and reply.code >= 500:
                return SenderDeliveryError(
                    f"SMTP server refused the sender: {reply.code} {reply.text}"
                )
            return classify_reply(reply.code, reply.text, COMMANDS[n])
        return None

    def _after_refusal(self, code: int) -> None:
        if code == 421 or self._wire is None or not self._wire.is_open:
            self.drop()
        else:
            self._dirty = True

    def drop(self) -> None:
        """Forget the connection (the next send opens a new one)."""
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()

    async def close(self) -> None:
        """Say QUIT if still connected."""
        wire, self._wire = self._wire, None
        if wire is not None and wire.is_open:
            await wire.quit()
        elif wire is not None:
            wire.close()


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
        self.description = f"SMTP to {host}:{port} ({security})"
        self.concurrency = max(1, connections)
        options: dict[str, object] = {
            "hostname": host, "port": port, "timeout": timeout, "tls_context": tls_context,
            "use_tls": security == "tls", "start_tls": security == "starttls",
        }  # fmt: skip
        login = (username, password) if username and password else None
        greeting = _Greeting(host, port, tls_context)
        self._all = [
            _Connection(options, login, timeout, greeting) for _ in range(self.concurrency)
        ]
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
            await connection.send(message)
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        """Say QUIT on every open connection."""
        await asyncio.gather(*(connection.close() for connection in self._all))
        self._idle = None
