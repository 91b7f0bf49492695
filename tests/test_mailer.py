"""Delivery backends against a real SMTP server and a real directory."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from bot.errors import (
    AuthenticationDeliveryError,
    ConnectionDeliveryError,
    DroppedDeliveryError,
    FatalDeliveryError,
    PermanentDeliveryError,
    RecipientDeliveryError,
    SenderDeliveryError,
    TemporaryDeliveryError,
    TlsDeliveryError,
    UnknownHostDeliveryError,
    UnknownOutcomeError,
)
from bot.mailer import SmtpMailer, classify
from bot.message import Envelope, Outgoing, build_message
from bot.outbox import OutboxMailer
from bot.smtp import classify_reply
from tests.conftest import (
    OffersPipelining,
    RecordingHandler,
    SmtpServer,
    free_port,
    listening,
    running,
    server_context,
)
from tests.smtp_faults import FaultHandler, FaultServer


def message(to: str, n: int = 1, text: str = "plain", html: str = "<p>html</p>") -> Outgoing:
    envelope = Envelope(
        sender=Address("paperbot", addr_spec="digest@paperbot.example.org"),
        recipient=Address(addr_spec=to),
        message_id=f"<m{n}.{to}@paperbot.example.org>",
        date=datetime(2026, 11, 25, 8, tzinfo=UTC),
    )
    return build_message(envelope, f"digest {n}", text, html)


@pytest.mark.parametrize(
    ("code", "kind"),
    [(451, TemporaryDeliveryError), (421, TemporaryDeliveryError), (552, TemporaryDeliveryError),
     (550, PermanentDeliveryError), (553, PermanentDeliveryError), (535, AuthenticationDeliveryError)],
)  # fmt: skip
def test_reply_codes(code: int, kind: type[Exception]) -> None:
    error = classify_reply(code, "text")
    assert type(error) is kind and error.code == code


@pytest.mark.parametrize(
    ("command", "code", "text", "kind"),
    [("RCPT", 550, "5.1.1 no such user", RecipientDeliveryError),
     ("RCPT", 550, "no such user", RecipientDeliveryError),
     ("RCPT", 550, "Relaying denied", PermanentDeliveryError),
     ("RCPT", 554, "Sender address rejected: Access denied", PermanentDeliveryError),
     ("RCPT", 554, "5.7.1 Relay access denied", PermanentDeliveryError),
     ("RCPT", 550, "5.7.1 Sender not allowed", PermanentDeliveryError),
     ("DATA", 550, "5.1.1 mailbox unknown", RecipientDeliveryError),
     ("DATA", 550, "5.2.1 mailbox disabled", RecipientDeliveryError),
     ("DATA", 554, "5.7.1 Message rejected: spam content", PermanentDeliveryError),
     ("DATA", 554, "Transaction failed", PermanentDeliveryError),
     ("DATA", 552, "5.2.2 mailbox full", TemporaryDeliveryError),
     ("", 550, "5.1.1 no such user", PermanentDeliveryError)],
)  # fmt: skip
def test_only_a_refused_mailbox_blames_the_address(
    command: str, code: int, text: str, kind: type[Exception]
) -> None:
    error = classify_reply(code, text, command)
    assert type(error) is kind and error.code == code


@pytest.mark.parametrize(
    ("reply", "error", "said"),
    [
        ("drop", DroppedDeliveryError, "connection lost before the data"),
        ("421 4.3.2 shutting down", TemporaryDeliveryError, "421"),
    ],
    ids=["drop", "421"],
)
async def test_a_connection_closed_during_a_transaction_fails_that_message_only(
    faults: FaultServer, reply: str, error: type[Exception], said: str
) -> None:
    """A drop before the data is this message's failure, not the server's, and 421 says the
    server is closing the channel: the next message goes over a new connection."""
    faults.handler.rcpt["poison@example.org"] = [reply]
    async with SmtpMailer(faults.host, faults.port, security="none") as mailer:
        with pytest.raises(error, match=said):
            await mailer.send(message("poison@example.org"))
        await mailer.send(message("fine@example.org"))
    assert [str(m["To"]) for m in faults.handler.accepted] == ["fine@example.org"]
    assert len(faults.handler.peers) == 2


async def test_a_server_that_cannot_be_reached_is_the_servers_failure() -> None:
    async with SmtpMailer("127.0.0.1", free_port(), security="none", timeout=2) as nobody:
        with pytest.raises(ConnectionDeliveryError) as down:
            await nobody.send(message("fine@example.org"))
    assert not isinstance(down.value, DroppedDeliveryError)


async def test_a_drop_on_a_kept_connection_after_the_server_answered_fails_that_message(
    faults: FaultServer,
) -> None:
    """The connection served a message already; the server answers MAIL for the next and
    drops at RCPT: that message failed (it is not a connection that died while idle, which
    would be opened again and the message sent again at once)."""
    faults.handler.rcpt["poison@example.org"] = ["drop"]
    async with SmtpMailer(faults.host, faults.port, security="none") as mailer:
        await mailer.send(message("fine@example.org"))
        with pytest.raises(DroppedDeliveryError, match="connection lost before the data"):
            await mailer.send(message("poison@example.org"))
    assert [str(m["To"]) for m in faults.handler.accepted] == ["fine@example.org"]


async def test_a_sender_refused_for_now_fails_the_message_for_now(faults: FaultServer) -> None:
    """451 to MAIL FROM is the server's trouble of the moment: the message is tried again later;
    only a 5xx refuses the sender (PAPERBOT_FROM) and stops the run."""
    faults.handler.mail = ["451 4.3.0 try later", "550 5.7.1 sender rejected"]
    async with SmtpMailer(faults.host, faults.port, security="none") as mailer:
        with pytest.raises(TemporaryDeliveryError) as later:
            await mailer.send(message("a@example.org"))
        with pytest.raises(SenderDeliveryError):
            await mailer.send(message("a@example.org"))
    assert type(later.value) is TemporaryDeliveryError and later.value.code == 451


@pytest.mark.parametrize(
    ("slow", "error", "when"),
    [("mail", DroppedDeliveryError, "before the data"),
     ("data", UnknownOutcomeError, "after the message data")],
)  # fmt: skip
async def test_a_server_slow_to_reply_is_said_to_be_slow(
    faults: FaultServer, slow: str, error: type[Exception], when: str
) -> None:
    """Not a connection "lost" with an empty reason: how long was waited, and the setting."""
    if slow == "mail":
        faults.handler.mail = ["sleep:1"]
    else:
        faults.handler.data["a@example.org"] = ["sleep:1"]
    async with SmtpMailer(faults.host, faults.port, security="none", timeout=0.3) as mailer:
        with pytest.raises(error) as late:
            await mailer.send(message("a@example.org"))
    assert str(late.value) == f"no reply within 0.3 s (PAPERBOT_SMTP_TIMEOUT) {when}"


def test_a_host_that_does_not_exist_stops_the_run() -> None:
    """A name that does not resolve is a setting to fix; a lookup that failed for now is not."""

    def connect_error(errno: int, text: str) -> Exception:
        error = aiosmtplib.SMTPConnectError(f"Error connecting to smtp.example.invalid: {text}")
        error.__cause__ = socket.gaierror(errno, text)
        return error

    missing = classify(connect_error(socket.EAI_NONAME, "Name or service not known"))
    assert isinstance(missing, UnknownHostDeliveryError) and "PAPERBOT_SMTP_HOST" in str(missing)
    assert isinstance(missing, FatalDeliveryError)
    later = classify(connect_error(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert isinstance(later, ConnectionDeliveryError)


async def test_one_connection_for_the_batch(smtp_server: SmtpServer) -> None:
    connections: list[object] = []
    original = smtp_server.handler.handle_RCPT

    async def counting(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        connections.append(session.peer)
        return await original(server, session, envelope, address, options)

    smtp_server.handler.handle_RCPT = counting  # type: ignore[method-assign]
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        for n in range(5):
            await mailer.send(message(f"user{n}@example.org", n))
    assert len(smtp_server.messages) == 5
    assert len(set(connections)) == 1


async def test_messages_arrive_byte_for_byte(smtp_server: SmtpServer) -> None:
    """A written message (dots escaped where a line would start with one) and raw bytes that
    need dot-stuffing and line ends repaired both arrive as they were meant."""
    text = ".\n..\n" + "x" * 75 + ".org\n"
    built = message("ada@example.org", text=text, html="<style>\n.a{color:red}\n</style>")
    raw = Outgoing(built.sender, "bob@example.org", "<raw@x>", "raw", b".one\r\n.\r\nbare\nend")
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        await mailer.send(built)
        await mailer.send(raw)
    assert built.transparent and not raw.transparent
    assert smtp_server.handler.raw == [built.data, b".one\r\n.\r\nbare\r\nend\r\n"]
    plain = smtp_server.messages[0].get_body(("plain",))
    assert plain is not None and plain.get_content() == text.replace("\n", "\r\n")


class PipeliningHandler(OffersPipelining, RecordingHandler):
    """A recording handler that offers PIPELINING."""


@pytest.mark.parametrize("handler", [RecordingHandler, PipeliningHandler])
async def test_refusals_are_classified_and_the_connection_kept(
    handler: type[RecordingHandler],
) -> None:
    with running(handler()) as server:
        server.handler.rcpt_replies["gone@example.org"] = ["550 5.1.1 unknown user"]
        server.handler.rcpt_replies["busy@example.org"] = ["452 4.2.2 mailbox busy"]
        server.handler.data_replies["full@example.org"] = ["552 5.2.2 mailbox full"]
        async with SmtpMailer(server.host, server.port, security="none") as mailer:
            with pytest.raises(PermanentDeliveryError) as permanent:
                await mailer.send(message("gone@example.org"))
            with pytest.raises(TemporaryDeliveryError):
                await mailer.send(message("busy@example.org"))
            with pytest.raises(TemporaryDeliveryError):
                await mailer.send(message("full@example.org"))
            for n in range(3):
                await mailer.send(message(f"fine{n}@example.org", n))
        assert permanent.value.code == 550
        received = [str(m["To"]) for m in server.messages]
        assert received == ["fine0@example.org", "fine1@example.org", "fine2@example.org"]


class ScriptedServer:
    """A bare SMTP server offering PIPELINING that refuses every recipient yet answers DATA
    with 354 (RFC 2920 lets a client meet that), and writes a two-line reply byte by byte."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted\r\n")
        in_data = False
        while line := await reader.readline():
            self.lines.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"554 5.5.1 no valid recipients\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-scripted\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL":
                for byte in b"250-sender\r\n250 ok\r\n":
                    writer.write(bytes([byte]))
                    await writer.drain()
            elif verb == b"RCPT":
                writer.write(b"550 5.1.1 unknown user\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedServer, int]]:
    script = ScriptedServer()
    server = await asyncio.start_server(script.session, "127.0.0.1", 0)
    async with server:
        yield script, server.sockets[0].getsockname()[1]


async def test_a_354_after_a_refused_recipient_gets_no_message(
    scripted: tuple[ScriptedServer, int],
) -> None:
    script, port = scripted
    async with SmtpMailer("127.0.0.1", port, security="none") as mailer:
        with pytest.raises(PermanentDeliveryError) as refused:
            await mailer.send(message("gone@example.org"))
        with pytest.raises(PermanentDeliveryError):  # the same connection, reset first
            await mailer.send(message("gone@example.org"))
    assert refused.value.code == 550
    commands = [line.split(b":")[0].split()[0] for line in script.lines]
    assert commands == [
        b"EHLO", b"MAIL", b"RCPT", b"DATA", b".",
        b"RSET", b"MAIL", b"RCPT", b"DATA", b".", b"QUIT",
    ]  # fmt: skip


async def test_a_send_cancelled_while_the_session_opens_closes_its_connection() -> None:
    """A stop while the server has not answered EHLO yet: the half-open session is closed at
    once, not left for the garbage collector to find."""
    closed = asyncio.Event()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow\r\n")
        while await reader.readline():  # EHLO is never answered
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        mailer = SmtpMailer("127.0.0.1", port, security="none", timeout=30)
        sending = asyncio.create_task(mailer.send(message("a@example.org")))
        await asyncio.sleep(0.2)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        await asyncio.wait_for(closed.wait(), 5)
        await mailer.close()


async def test_connection_refused_is_temporary() -> None:
    async with SmtpMailer("127.0.0.1", free_port(), security="none", timeout=2) as mailer:
        with pytest.raises(TemporaryDeliveryError, match="connection"):
            await mailer.send(message("a@example.org"))


@pytest.fixture
def auth_server() -> Iterator[SmtpServer]:
    def deny(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"right"
        return AuthResult(success=ok, handled=False)

    with running(RecordingHandler(), authenticator=deny, auth_require_tls=False) as server:
        yield server


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_authentication_failure_is_fatal(auth_server: SmtpServer) -> None:
    mailer = SmtpMailer(
        auth_server.host, auth_server.port, security="none", username="u", password="wrong"
    )
    async with mailer:
        with pytest.raises(AuthenticationDeliveryError, match="authentication"):
            await mailer.send(message("a@example.org"))
    good = SmtpMailer(
        auth_server.host, auth_server.port, security="none", username="u", password="right"
    )
    async with good:
        await good.send(message("a@example.org"))
    assert len(auth_server.messages) == 1


@pytest.mark.parametrize(
    ("security", "said"),
    [("starttls", "does not offer STARTTLS on this port: use the port where it does (587), or "
                  "PAPERBOT_SMTP_SECURITY=tls with its TLS port (465); set "
                  "PAPERBOT_SMTP_SECURITY=none only if the server offers no TLS at all"),
     ("tls", "this port does not speak TLS from the first byte")],
)  # fmt: skip
async def test_tls_a_plain_server_does_not_speak_is_fatal_and_says_what_to_change(
    smtp_server: SmtpServer, security: str, said: str
) -> None:
    async with SmtpMailer(
        smtp_server.host, smtp_server.port, security=security, timeout=3
    ) as mailer:
        with pytest.raises(TlsDeliveryError) as failed:
            await mailer.send(message("a@example.org"))
    assert said in str(failed.value)


async def test_outbox_writes_eml_preview_and_index(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    async with OutboxMailer(outbox) as mailer:
        await mailer.send(message("ada@example.org", 1))
        await mailer.send(message("ada@example.org", 1))  # the same message again: same file
        await mailer.send(message("bob@example.org", 2))
    emls = sorted(outbox.glob("*.eml"))
    assert len(emls) == 2
    parsed = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert emls[0].with_suffix(".html").read_text() == "<p>html</p>\n"
    index = (outbox / "index.html").read_text()
    assert index.count("<tr>") == 3 and "bob@example.org" in index
    assert not list(outbox.glob("*.tmp"))


async def test_outbox_index_is_rewritten_only_when_out_of_date(tmp_path: Path) -> None:
    """The worker opens the outbox at every sweep: one that writes nothing leaves the index as
    it is (with thousands of messages, reading them all again would take the whole sweep); one
    that writes a message, or finds no index, brings it up to date."""
    outbox, envelope = tmp_path / "outbox", message("ada@example.org", 1)
    async with OutboxMailer(outbox) as mailer:
        await mailer.send(envelope)
    index = outbox / "index.html"
    index.write_text("as it was")
    async with OutboxMailer(outbox):
        pass
    assert index.read_text() == "as it was"
    async with OutboxMailer(outbox) as mailer:
        await mailer.send(message("bob@example.org", 2))
    assert index.read_text().count("<tr>") == 3
    index.unlink()
    async with OutboxMailer(outbox):
        pass
    assert index.read_text().count("<tr>") == 3


async def test_outbox_index_reads_headers_longer_than_one_read(tmp_path: Path) -> None:
    envelope = Envelope(
        sender=Address("paperbot", addr_spec="digest@paperbot.example.org"),
        recipient=Address(addr_spec="ada@example.org"),
        message_id="<long@paperbot.example.org>",
        date=datetime(2026, 11, 25, 8, tzinfo=UTC),
    )
    subject = " ".join(f"word{i}" for i in range(1000))  # headers of some 10 kB
    async with OutboxMailer(tmp_path) as mailer:
        await mailer.send(build_message(envelope, subject, "plain", "<p>html</p>"))
    assert subject in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_messages_go_through_tls_on_one_reused_connection(
    certificate: tuple[Path, Path], security: str
) -> None:
    cert, _ = certificate
    server_tls = server_context(certificate)
    handler = PipeliningHandler()
    peers: list[object] = []
    original = handler.handle_RCPT

    async def counting(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        peers.append((session.peer, server.transport.get_extra_info("ssl_object") is not None))
        return await original(server, session, envelope, address, options)

    handler.handle_RCPT = counting  # type: ignore[method-assign]
    options = (
        {"tls_context": server_tls, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": server_tls}
    )
    client_tls = ssl.create_default_context(cafile=str(cert))
    with running(handler, **options) as server:
        mailer = SmtpMailer(
            server.host, server.port, security=security, tls_context=client_tls, timeout=5
        )
        async with mailer:
            for n in range(3):
                await mailer.send(message(f"user{n}@example.org", n))
            with pytest.raises(PermanentDeliveryError):
                handler.rcpt_replies["gone@example.org"] = ["550 5.1.1 unknown user"]
                await mailer.send(message("gone@example.org"))
            await mailer.send(message("user3@example.org", 3))
    assert [str(m["To"]) for m in handler.messages] == [f"user{n}@example.org" for n in range(4)]
    assert len({peer for peer, _ in peers}) == 1, "one connection, reused"
    assert all(encrypted for _, encrypted in peers)


async def test_a_certificate_not_trusted_is_a_tls_failure(certificate: tuple[Path, Path]) -> None:
    """A setting (or the server's certificate) to fix: not retried as a connection problem."""
    with running(RecordingHandler(), ssl_context=server_context(certificate)) as server:
        untrusting = ssl.create_default_context()  # the self-signed certificate is not in it
        mailer = SmtpMailer(server.host, server.port, security="tls", tls_context=untrusting)
        async with mailer:
            with pytest.raises(TlsDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
                await mailer.send(message("a@example.org"))


@pytest.mark.parametrize(("security", "trusted"), [("none", False), ("starttls", True)])
async def test_a_port_that_expects_tls_first_is_a_tls_failure_that_says_so(
    certificate: tuple[Path, Path], security: str, trusted: bool
) -> None:
    """Plain SMTP (or STARTTLS) to a port that speaks TLS from the first byte, as 465 does:
    no greeting comes, and the port answers TLS (with a certificate trusted or not). Every
    connection of the pool says so: a setting to fix, not connection trouble."""
    client_tls = ssl.create_default_context(cafile=str(certificate[0])) if trusted else None
    with running(RecordingHandler(), ssl_context=server_context(certificate)) as server:
        mailer = SmtpMailer(
            server.host, server.port, security=security, timeout=0.5, tls_context=client_tls,
            connections=2,
        )  # fmt: skip
        async with mailer:
            sends = (mailer.send(message(f"user{n}@example.org", n)) for n in range(2))
            failed = await asyncio.gather(*sends, return_exceptions=True)
    assert [type(error) for error in failed] == [TlsDeliveryError, TlsDeliveryError]
    assert str(failed[0]) == (
        "SMTP TLS failed: the server sent no greeting in plain text within 0.5 s and answers "
        f"TLS instead: port {server.port} expects TLS from the first byte: set "
        "PAPERBOT_SMTP_SECURITY=tls (or starttls with the server's STARTTLS port, usually 587)"
    )


Session = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(session: Session) -> AsyncIterator[int]:
    """A bare TCP server on 127.0.0.1 running ``session`` for each connection: its port. As it
    stops, the sessions still running are ended and their connections closed."""
    running: set[asyncio.Task[object]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await session(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A session of a server that never greets (nor answers TLS) until the client hangs up."""
    with contextlib.suppress(OSError):
        await reader.read()


async def test_a_server_that_never_greets_is_connection_trouble() -> None:
    """No greeting and no TLS either: a server too busy to greet, whose connection is opened
    again; how long was waited is said, with the setting."""
    async with (
        serving(say_nothing) as port,
        SmtpMailer("127.0.0.1", port, security="starttls", timeout=0.3) as mailer,
    ):
        for _ in range(2):
            with pytest.raises(ConnectionDeliveryError) as failed:
                await mailer.send(message("a@example.org"))
            assert str(failed.value) == (
                "connection problem: no greeting within 0.3 s (PAPERBOT_SMTP_TIMEOUT)"
            )


async def test_a_server_slow_to_greet_at_first_works_on_the_next_connection(
    smtp_server: SmtpServer,
) -> None:
    """The first connection is not greeted in time; the port is asked whether it speaks TLS
    (it greets in plain text instead), and the next connection delivers."""
    connections = 0

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
        except OSError:
            pass
        finally:
            writer.close()

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            return await say_nothing(reader, writer)
        upstream = await asyncio.open_connection(smtp_server.host, smtp_server.port)
        await asyncio.gather(pipe(reader, upstream[1]), pipe(upstream[0], writer))

    async with (
        serving(late) as port,
        SmtpMailer("127.0.0.1", port, security="none", timeout=0.5) as mailer,
    ):
        with pytest.raises(ConnectionDeliveryError, match=r"no greeting within 0\.5 s"):
            await mailer.send(message("a@example.org"))
        await mailer.send(message("a@example.org"))
    assert len(smtp_server.messages) == 1
    assert connections == 3, "the first, the question whether it speaks TLS, the one that worked"


@pytest.mark.parametrize(
    ("security", "said"),
    [("none", "the server offers no AUTH without TLS, so PAPERBOT_SMTP_USERNAME cannot log in: "
              "many offer it only over TLS: set PAPERBOT_SMTP_SECURITY=starttls (port 587) or "
              "tls (port 465); or unset PAPERBOT_SMTP_USERNAME and PAPERBOT_SMTP_PASSWORD if it "
              "needs no login"),
     ("starttls", "the server offers no AUTH, so PAPERBOT_SMTP_USERNAME cannot log in: unset "
                  "PAPERBOT_SMTP_USERNAME and PAPERBOT_SMTP_PASSWORD if it needs no login, or "
                  "use its port for submission (587 or 465)")],
)  # fmt: skip
async def test_a_login_the_server_offers_no_auth_for_is_fatal_and_says_what_to_change(
    certificate: tuple[Path, Path], security: str, said: str
) -> None:
    """The server offers no AUTH (over TLS or not): every message would go unauthenticated or
    not at all, so the run stops, as when the login is refused."""
    client_tls = ssl.create_default_context(cafile=str(certificate[0]))
    handler = FaultHandler(offers_auth=False)
    with listening(handler, tls_context=server_context(certificate)) as port:
        mailer = SmtpMailer(
            "127.0.0.1", port, security=security, username="u", password="p",
            tls_context=client_tls, timeout=5,
        )  # fmt: skip
        async with mailer:
            with pytest.raises(AuthenticationDeliveryError) as failed:
                await mailer.send(message("a@example.org"))
    assert str(failed.value) == f"SMTP authentication failed: {said}"
    assert handler.commands == {}
