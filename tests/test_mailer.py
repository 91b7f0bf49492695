"""Delivery backends against a real SMTP server and a real directory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bot.errors import FatalDeliveryError, PermanentDeliveryError, TemporaryDeliveryError
from bot.mailer import SmtpMailer, classify_reply
from bot.message import Envelope, Outgoing, build_message
from bot.outbox import OutboxMailer
from tests.conftest import RecordingHandler, SmtpServer, free_port


def message(to: str, n: int = 1) -> Outgoing:
    envelope = Envelope(
        sender=Address("paperbot", addr_spec="digest@paperbot.example.org"),
        recipient=Address(addr_spec=to),
        message_id=f"<m{n}.{to}@paperbot.example.org>",
        date=datetime(2026, 11, 25, 8, tzinfo=UTC),
    )
    return build_message(envelope, f"digest {n}", "plain", "<p>html</p>")


@pytest.mark.parametrize(
    ("code", "kind"),
    [(451, TemporaryDeliveryError), (421, TemporaryDeliveryError), (552, TemporaryDeliveryError),
     (550, PermanentDeliveryError), (553, PermanentDeliveryError), (535, FatalDeliveryError)],
)  # fmt: skip
def test_reply_codes(code: int, kind: type[Exception]) -> None:
    error = classify_reply(code, "text")
    assert type(error) is kind and error.code == code


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


async def test_refusals_are_classified(smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_replies["gone@example.org"] = ["550 5.1.1 unknown user"]
    smtp_server.handler.rcpt_replies["busy@example.org"] = ["452 4.2.2 mailbox busy"]
    smtp_server.handler.data_replies["full@example.org"] = ["552 5.2.2 mailbox full"]
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        with pytest.raises(PermanentDeliveryError) as permanent:
            await mailer.send(message("gone@example.org"))
        with pytest.raises(TemporaryDeliveryError):
            await mailer.send(message("busy@example.org"))
        with pytest.raises(TemporaryDeliveryError):
            await mailer.send(message("full@example.org"))
        await mailer.send(message("fine@example.org"))  # the connection is still usable
    assert permanent.value.code == 550
    assert [str(m["To"]) for m in smtp_server.messages] == ["fine@example.org"]


async def test_connection_refused_is_temporary() -> None:
    async with SmtpMailer("127.0.0.1", free_port(), security="none", timeout=2) as mailer:
        with pytest.raises(TemporaryDeliveryError, match="connection"):
            await mailer.send(message("a@example.org"))


@pytest.fixture
def auth_server() -> Iterator[SmtpServer]:
    def deny(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"right"
        return AuthResult(success=ok, handled=False)

    handler = RecordingHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), authenticator=deny, auth_require_tls=False
    )
    controller.start()
    yield SmtpServer("127.0.0.1", controller.port, handler)
    controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_authentication_failure_is_fatal(auth_server: SmtpServer) -> None:
    mailer = SmtpMailer(
        auth_server.host, auth_server.port, security="none", username="u", password="wrong"
    )
    async with mailer:
        with pytest.raises(FatalDeliveryError, match="authentication"):
            await mailer.send(message("a@example.org"))
    good = SmtpMailer(
        auth_server.host, auth_server.port, security="none", username="u", password="right"
    )
    async with good:
        await good.send(message("a@example.org"))
    assert len(auth_server.messages) == 1


async def test_starttls_refused_by_server_is_fatal(smtp_server: SmtpServer) -> None:
    async with SmtpMailer(
        smtp_server.host, smtp_server.port, security="starttls", timeout=3
    ) as mailer:
        with pytest.raises(FatalDeliveryError, match="TLS"):
            await mailer.send(message("a@example.org"))


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
    assert emls[0].with_suffix(".html").read_text() == "<p>html</p>"
    index = (outbox / "index.html").read_text()
    assert index.count("<tr>") == 3 and "bob@example.org" in index
    assert not list(outbox.glob("*.tmp"))
