"""Shared fixtures: a real SMTP server, real SQLite files, real files on disk."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import shutil
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd chatters at INFO

pytest_plugins = ["tests.smtp_faults"]  # its `faults` fixture


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_proxy() -> Iterator[tuple[str, list[socket.socket]]]:
    """An HTTP proxy that accepts connections and never answers: its URL, and the connections
    it holds."""
    held: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)

        def hold() -> None:
            while listener.fileno() != -1:
                try:
                    held.append(listener.accept()[0])
                except (TimeoutError, OSError):
                    continue

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
        finally:
            listener.close()
            thread.join()
            for connection in held:
                connection.close()


@contextmanager
def hanging_sources() -> Iterator[tuple[dict[str, str], list[socket.socket]]]:
    """Settings that send the HTTP sources' requests to a proxy that never answers (see
    ``silent_proxy``), and the connections it holds: a process with them waits for its sources
    until it gives up."""
    with silent_proxy() as (proxy, held):
        names = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
        yield dict.fromkeys(names, proxy) | {"NO_PROXY": "", "no_proxy": ""}, held


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that records accepted messages and answers with scripted replies.

    ``rcpt_replies`` maps a recipient to a list of replies used one per attempt (the last one
    repeats); ``data_replies`` does the same for the DATA command.
    """

    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _next(script: dict[str, list[str]], key: str) -> str | None:
        replies = script.get(key)
        if not replies:
            return None
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._next(self.rcpt_replies, address.lower())
        if reply and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._next(self.data_replies, envelope.rcpt_tos[0].lower())
        if reply and not reply.startswith("2"):
            return reply
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
            self.raw.append(envelope.content)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages received for one recipient."""
        return [m for m in self.messages if address in str(m["To"])]


@dataclass
class SmtpServer:
    """A running in-process SMTP server."""

    host: str
    port: int
    handler: RecordingHandler

    @property
    def messages(self) -> list[EmailMessage]:
        """Every accepted message."""
        return self.handler.messages

    def env(self) -> dict[str, str]:
        """Settings that point paperbot at this server."""
        return {
            "PAPERBOT_SMTP_HOST": self.host,
            "PAPERBOT_SMTP_PORT": str(self.port),
            "PAPERBOT_SMTP_SECURITY": "none",
        }


class _Controller(Controller):
    """aiosmtpd's controller, closing the connections still open when it stops: otherwise each
    stays open, unseen, until the garbage collector finds it during some later test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session: SMTP = super().factory()
        self._sessions.append(session)
        return session

    def _close_sessions(self) -> None:
        for session in self._sessions:
            if session.transport is not None:
                session.transport.abort()

    def stop(self, no_assert: bool = False) -> None:
        self.loop.call_soon_threadsafe(self._close_sessions)
        super().stop(no_assert)


@contextmanager
def listening(handler: object, **options: Any) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 with ``handler`` (``options`` go to aiosmtpd): its port."""
    controller = _Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@contextmanager
def running(handler: RecordingHandler, **options: Any) -> Iterator[SmtpServer]:
    """A real aiosmtpd server on localhost with ``handler`` (``options`` go to aiosmtpd)."""
    with listening(handler, **options) as port:
        yield SmtpServer("127.0.0.1", port, handler)


class OffersPipelining:
    """A handler mixin: EHLO also offers PIPELINING (aiosmtpd reads pipelined commands one
    after another)."""

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on localhost that records what it accepts."""
    with running(RecordingHandler()) as server:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A server's TLS context with the ``certificate`` fixture's certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def papers_file(tmp_path: Path) -> Path:
    """A small fictional day in the Papers-file format, with one hostile paper."""
    target = tmp_path / "papers.jsonl"
    shutil.copy(FIXTURES / "papers.jsonl", target)
    return target


@pytest.fixture
def profiles_file(tmp_path: Path) -> Path:
    """Three subscribers: MoE, diffusion, and one whose interests match nothing."""
    target = tmp_path / "profiles.yaml"
    shutil.copy(FIXTURES / "profiles.yaml", target)
    return target


@pytest.fixture
def env(
    tmp_path: Path, papers_file: Path, profiles_file: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A clean PAPERBOT_* environment: temp database, outbox, profiles and papers file."""
    for name in list(os.environ):
        if name.startswith("PAPERBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    values = {
        "PAPERBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "PAPERBOT_PROFILES": str(profiles_file),
        "PAPERBOT_SOURCES": f"file:{papers_file}",
        "PAPERBOT_OUTBOX": str(tmp_path / "outbox"),
        "PAPERBOT_FROM": "paperbot <digest@paperbot.example.org>",
        "PAPERBOT_BASE_URL": "https://paperbot.example.org",
        "PAPERBOT_SECRET_KEY": "test-secret",
        "PAPERBOT_UNSUBSCRIBE_MAILTO": "unsubscribe@paperbot.example.org",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07)")


UNMATCHED = ("    interests:", '      keywords: ["quantum error correction"]')
"""Interests of ``crowd_profiles`` readers that no paper of the day matches: each gets a
"nothing matched" note."""


def reader(n: int, domains: int = 1) -> str:
    """The address of ``crowd_profiles``' reader ``n``: at example.org, or spread over
    ``domains`` domains (example0.org, example1.org, …)."""
    return f"reader{n}@example.org" if domains == 1 else f"reader{n}@example{n % domains}.org"


def crowd_profiles(path: Path, count: int, *lines: str, domains: int = 1) -> Path:
    """A profiles file of ``count`` subscribers (``reader``), who also want empty digests;
    ``lines`` are the YAML lines each of them has besides."""
    text = ["subscribers:"]
    for n in range(count):
        text += [f"  - email: {reader(n, domains)}", "    send_empty: true", *lines]
    path.write_text("\n".join(text) + "\n")
    return path


def matched_emails(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the address of every subscriber matched against papers (matching still
    runs as always)."""
    from bot import matching

    matched: list[str] = []
    real = matching.select

    def select(subscribers: Any, *args: Any, **kwargs: Any) -> Any:
        matched.extend(s.email for s in subscribers)
        return real(subscribers, *args, **kwargs)

    monkeypatch.setattr(matching, "select", select)
    return matched


def stored_summaries(database_url: str) -> list[str]:
    """The runs' summaries as the runs table of a SQLite database holds them (JSON text),
    oldest first: what ``status`` and later versions read."""
    path = database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        return [text for (text,) in db.execute("SELECT summary FROM runs ORDER BY id")]


def run_cli(env: dict[str, str], *args: str, tty: bool = False) -> tuple[int, str]:
    """`python -m bot ARGS` of this checkout in its own process, its stdout a pipe or a
    120-column terminal (a pty); ``env`` may set COLUMNS, which is otherwise unset."""
    inherited = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    full = inherited | {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color"} | env
    command = [sys.executable, "-m", "bot", *args]
    if not tty:
        done = subprocess.run(
            command, env=full, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60
        )
        return done.returncode, done.stdout.decode()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(command, env=full, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    text = b"".join(chunks).decode()
    return proc.wait(timeout=60), ANSI.sub("", text).replace("\r\n", "\n")
