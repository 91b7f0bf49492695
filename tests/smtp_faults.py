"""A fault-injecting SMTP server: aiosmtpd with scripted replies, drops and stalls.

Scripts are keyed by recipient (lower case) and consumed one entry per attempt; the last entry
repeats. An entry is a reply line (``"451 4.3.0 try later"``), ``"drop"`` (close the connection
without a reply) or ``"sleep:SECONDS"`` (stall, then accept). For DATA, ``"drop"`` closes the
connection *after* the message arrived, which is the case where the sender cannot know.

The server offers PIPELINING, as production servers do, so paperbot sends MAIL, RCPT and DATA
together (aiosmtpd reads them one after another).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import OffersPipelining, listening


@dataclass
class FaultHandler(OffersPipelining):
    """Records accepted messages (and messages received before a drop) and plays scripts."""

    mail: list[str] = field(default_factory=list)  # replies to MAIL FROM, one per command
    rcpt: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, list[str]] = field(default_factory=dict)
    accepted: list[EmailMessage] = field(default_factory=list)
    dropped: list[EmailMessage] = field(default_factory=list)  # data received, no 250 sent
    commands: Counter[str] = field(default_factory=Counter)
    peers: set[object] = field(default_factory=set)  # client ends of the connections used
    lock: threading.Lock = field(default_factory=threading.Lock)
    offers_auth: bool = True  # False: EHLO never offers AUTH, not even over TLS

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        offered = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [r for r in offered if self.offers_auth or not r.startswith("250-AUTH")]

    @staticmethod
    def _next(script: list[str] | None) -> str | None:
        if not script:
            return None
        return script.pop(0) if len(script) > 1 else script[0]

    async def _play(self, server: SMTP, step: str | None) -> str | None:
        """Act out a script step; a reply to send instead of accepting, or None to accept."""
        if step is None or step.startswith("2"):
            return None
        if step.startswith("sleep:"):
            await asyncio.sleep(float(step.split(":", 1)[1]))
            return None
        if step == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "421 dropped"  # never reaches the client
        return step

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands["MAIL"] += 1
        self.peers.add(session.peer)
        reply = await self._play(server, self._next(self.mail))
        if reply:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands["RCPT"] += 1
        reply = await self._play(server, self._next(self.rcpt.get(address.lower())))
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.commands["DATA"] += 1
        step = self._next(self.data.get(envelope.rcpt_tos[0].lower()))
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        in_doubt = step is not None and (step == "drop" or step.startswith("sleep:"))
        if in_doubt:  # the data is here; the client may never hear what became of it
            with self.lock:
                self.dropped.append(message)
        reply = await self._play(server, step)
        if reply:
            return reply
        with self.lock:
            if in_doubt:
                self.dropped.remove(message)
            self.accepted.append(message)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        """Accepted messages for one recipient."""
        return [m for m in self.accepted if address in str(m["To"])]

    def received(self) -> list[EmailMessage]:
        """Every message whose data reached the server, accepted or dropped after DATA."""
        return [*self.accepted, *self.dropped]


@dataclass
class FaultServer:
    """A running fault-injecting server."""

    host: str
    port: int
    handler: FaultHandler

    def env(self, **extra: str) -> dict[str, str]:
        """Settings that point paperbot at this server."""
        values = {
            "PAPERBOT_SMTP_HOST": self.host,
            "PAPERBOT_SMTP_PORT": str(self.port),
            "PAPERBOT_SMTP_SECURITY": "none",
        }
        return values | extra


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == b"right"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def faults() -> Iterator[FaultServer]:
    """A running fault-injecting server (a fixture for every test module: conftest loads this
    module as a plugin)."""
    yield from serve()


def serve(auth: bool = False, **options: Any) -> Iterator[FaultServer]:
    """Run a fault server for the duration of a fixture (``options`` go to aiosmtpd)."""
    handler = FaultHandler()
    if auth:
        options |= {"authenticator": _authenticate, "auth_require_tls": False}
    with listening(handler, **options) as port:
        yield FaultServer("127.0.0.1", port, handler)
