"""Delivery backends: SMTP through aiosmtplib, or an outbox directory. Knows nothing of papers.

Both implement ``Mailer``: ``await mailer.send(message)`` returns when the message was accepted and
raises a DeliveryError subclass saying whether to retry, give up on the recipient, stop the run,
or (connection lost after the data went out) that nobody knows whether it arrived.

``SmtpMailer`` keeps a pool of ``connections`` SMTP connections, each reused for many messages;
``concurrency`` tells a caller how many sends may usefully run at once. aiosmtplib opens each
session (greeting, EHLO, STARTTLS, AUTH); the mail transactions then run on ``_Wire``, which sends
MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920): two round trips
per message instead of four.

Only a refusal of the recipient's mailbox blames the address (``RecipientDeliveryError``): a 5xx
to RCPT, unless its enhanced status is 5.7.x (a policy: relaying denied, sender not allowed), or
a 5xx to DATA with 5.1.x or 5.2.x (mailbox unknown or disabled). Any other 5xx refuses the
message. A connection lost during a transaction, before its data is complete, fails that
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
import re
import ssl
from collections import deque
from types import TracebackType
from typing import NamedTuple, Protocol, Self

import aiosmtplib

from bot.errors import (
    AuthenticationDeliveryError,
    ConnectionDeliveryError,
    DeliveryError,
    DroppedDeliveryError,
    PermanentDeliveryError,
    RecipientDeliveryError,
    SenderDeliveryError,
    TemporaryDeliveryError,
    TlsDeliveryError,
    UnknownHostDeliveryError,
    UnknownOutcomeError,
    caused_by,
    no_such_host,
)
from bot.message import Outgoing

__all__ = ["Mailer", "SmtpMailer", "classify", "classify_reply"]

TEMPORARY_5XX = {552}  # "mailbox full / exceeded storage": worth another try later
AUTH_CODES = {530, 534, 535, 538}
MAX_REPLY = 64 * 1024
"""Most bytes of replies waiting to be read: a server sending more is broken or hostile."""
_BARE_NEWLINE = re.compile(rb"(?<!\r)\n|\r(?!\n)")
_NOT_IN_PATH = re.compile(r"[\x00-\x20\x7f<>]")
_ENVELOPE = ((250,), (250, 251), (354,))
"""The replies that let a transaction go on after MAIL, RCPT and DATA."""
_COMMANDS = ("MAIL", "RCPT", "DATA")
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?![\d.])")
"""An enhanced status code (RFC 3463) at the start of a reply's text: class.subject.detail."""
_MAILBOX_AT_DATA = {"1", "2"}
"""Enhanced status subjects of a refused DATA that are about the mailbox: addressing (5.1.x:
no such user) and mailbox status (5.2.x: disabled)."""
_POLICY = "7"
"""The enhanced status subject of security and policy refusals (5.7.x)."""
_POLICY_WORDS = re.compile(
    r"relay|not permitted|not allowed|access denied|authenticat|policy|blocked|spam", re.I
)
"""Words of a refusal without an enhanced status that blame the sender or the server's rules."""
_NOT_TLS = {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"}
"""What OpenSSL calls an answer that is no TLS at all, such as a plain SMTP greeting."""
_NOT_TLS_PORT = (
    "this port does not speak TLS from the first byte: use PAPERBOT_SMTP_SECURITY=starttls "
    "(port 587) or the server's TLS port (465)"
)
_NO_STARTTLS = (
    "the server does not offer STARTTLS on this port: use the port where it does (587), or "
    "PAPERBOT_SMTP_SECURITY=tls with its TLS port (465); set PAPERBOT_SMTP_SECURITY=none only "
    "if the server offers no TLS at all"
)

_TLS_FIRST = (
    "the server sent no greeting in plain text within {timeout:g} s and answers TLS instead: "
    "port {port} expects TLS from the first byte: set PAPERBOT_SMTP_SECURITY=tls (or starttls "
    "with the server's STARTTLS port, usually 587)"
)
_NO_AUTH = {
    False: (
        "the server offers no AUTH without TLS, so PAPERBOT_SMTP_USERNAME cannot log in: many "
        "offer it only over TLS: set PAPERBOT_SMTP_SECURITY=starttls (port 587) or tls (port "
        "465); or unset PAPERBOT_SMTP_USERNAME and PAPERBOT_SMTP_PASSWORD if it needs no login"
    ),
    True: (
        "the server offers no AUTH, so PAPERBOT_SMTP_USERNAME cannot log in: unset "
        "PAPERBOT_SMTP_USERNAME and PAPERBOT_SMTP_PASSWORD if it needs no login, or use its "
        "port for submission (587 or 465)"
    ),
}
"""What to change when a login is set up and the server offers no AUTH, by whether the session
is encrypted."""


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


def classify_reply(code: int, text: str, command: str = "") -> DeliveryError:
    """The DeliveryError an SMTP reply means for this message; ``command`` is what it answered
    (MAIL, RCPT or DATA, the message data included), if any."""
    detail = f"{code} {text}".strip()
    status = enhanced_status(text)
    if code in AUTH_CODES:
        return AuthenticationDeliveryError(f"SMTP authentication failed: {detail}", code, status)
    if 400 <= code < 500 or code in TEMPORARY_5XX:
        return TemporaryDeliveryError(f"temporarily refused: {detail}", code, status)
    if refuses_mailbox(command, status, text):
        return RecipientDeliveryError(f"refused: {detail}", code, status)
    return PermanentDeliveryError(f"refused: {detail}", code, status)


def enhanced_status(text: str) -> str | None:
    """The enhanced status code a reply's text starts with (``5.1.1``), if it has one."""
    found = _ENHANCED.match(text)
    return found.group(0) if found else None


def refuses_mailbox(command: str, status: str | None, text: str = "") -> bool:
    """Whether a permanent refusal of ``command`` with enhanced ``status`` is about the
    recipient's mailbox, so that the address should get no more mail (see the module
    docstring); a refusal of the message or a policy is not. A reply without an enhanced status
    that names a policy (``550 Relaying denied``) is read as one."""
    subject = status.split(".")[1] if status else None
    if command == "RCPT":
        return subject != _POLICY and not (status is None and _POLICY_WORDS.search(text))
    return command == "DATA" and subject in _MAILBOX_AT_DATA


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


def tls_failure(exc: Exception) -> TlsDeliveryError | None:
    """The TLS failure ``exc`` is, or was raised from, with what to change when the security
    mode does not fit the port: None when it is no TLS failure."""
    if "STARTTLS" in str(exc):  # aiosmtplib: "SMTP STARTTLS extension not supported by server."
        return TlsDeliveryError(f"SMTP TLS failed: {_NO_STARTTLS}")
    error = caused_by(exc, ssl.SSLError)
    if error is None:
        return None
    if error.reason in _NOT_TLS:
        return TlsDeliveryError(f"SMTP TLS failed ({error.reason}): {_NOT_TLS_PORT}")
    return TlsDeliveryError(f"SMTP TLS failed: {error}")


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


def data_payload(raw: bytes, transparent: bool = False) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ending with ``.CRLF``.

    A ``transparent`` message (see ``Outgoing``) needs only the end. Otherwise checks come
    first, as counts and a search are quicker than the regex and the replacement.
    """
    if transparent and raw.endswith(b"\r\n") and not raw.startswith(b"."):
        return raw + b".\r\n"
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = _BARE_NEWLINE.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    if raw.startswith(b"."):
        raw = b"." + raw
    if b"\r\n." in raw:
        raw = raw.replace(b"\r\n.", b"\r\n..")
    return raw + b".\r\n"


def envelope_commands(sender: str, recipient: str) -> list[bytes]:
    """MAIL, RCPT and DATA for one message; an address no command may carry is refused."""
    if not _in_path(sender):
        raise SenderDeliveryError(f"the sender {sender!r} cannot be sent over SMTP")
    if not _in_path(recipient):
        raise RecipientDeliveryError(f"refused: {recipient!r} cannot be sent over SMTP")
    return [
        f"MAIL FROM:<{sender}>\r\n".encode("ascii"),
        f"RCPT TO:<{recipient}>\r\n".encode("ascii"),
        b"DATA\r\n",
    ]


def _in_path(address: str) -> bool:
    """Whether an SMTP command can carry ``address`` (ASCII, no space, control or bracket)."""
    return address.isascii() and not _NOT_IN_PATH.search(address)


class Reply(NamedTuple):
    """One SMTP reply: its code and its text (lines joined with newlines)."""

    code: int
    text: str


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
            raise AuthenticationDeliveryError(f"SMTP authentication failed: {_NO_AUTH[encrypted]}")
        await smtp.login(username, password)

    async def _classify(self, exc: Exception) -> DeliveryError:
        """``classify`` for an error opening the session; a greeting that did not come is
        connection trouble, unless the port answers TLS instead (see ``_Greeting``)."""
        if not no_greeting(exc):
            return classify(exc)
        if not self._options["use_tls"] and await self._greeting.tls_instead(self._timeout):
            text = _TLS_FIRST.format(timeout=self._timeout, port=self._greeting.port)
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
            replies = await wire.exchange(commands, _ENVELOPE)
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
        for n, (reply, ok) in enumerate(zip(replies, _ENVELOPE, strict=False)):
            if reply.code in ok:
                continue
            self._after_refusal(reply.code)
            if n == 0 and reply.code >= 500:
                return SenderDeliveryError(
                    f"SMTP server refused the sender: {reply.code} {reply.text}"
                )
            return classify_reply(reply.code, reply.text, _COMMANDS[n])
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
