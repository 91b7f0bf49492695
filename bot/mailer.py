"""Delivery backends: SMTP through aiosmtplib, or an outbox directory. Knows nothing of papers.

Both implement ``Mailer``: ``await mailer.send(message)`` returns when the message was accepted and
raises a DeliveryError subclass saying whether to retry, give up on the recipient, or stop the run.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import aiosmtplib

from bot.errors import (
    DeliveryError,
    FatalDeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

TEMPORARY_5XX = {552}  # "mailbox full / exceeded storage": worth another try later


class Mailer(Protocol):
    """Something that can deliver an EmailMessage."""

    description: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise a DeliveryError subclass."""


def classify_reply(code: int, text: str) -> DeliveryError:
    """The DeliveryError an SMTP reply code means for this recipient."""
    detail = f"{code} {text}".strip()
    if code in (530, 534, 535, 538):
        return FatalDeliveryError(f"SMTP authentication failed: {detail}", code)
    if 400 <= code < 500 or code in TEMPORARY_5XX:
        return TemporaryDeliveryError(f"temporarily refused: {detail}", code)
    return PermanentDeliveryError(f"refused: {detail}", code)


def classify(exc: Exception) -> DeliveryError:
    """Map an aiosmtplib or socket error onto retry / give up / stop."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify_reply(first.code, first.message)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return FatalDeliveryError(f"SMTP authentication failed: {exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(exc.code, exc.message)
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPNotSupported) or "STARTTLS" in str(exc):
        return FatalDeliveryError(f"SMTP TLS failed: {exc}")
    return TemporaryDeliveryError(f"connection problem: {exc or type(exc).__name__}")


class SmtpMailer:
    """One SMTP connection reused for the batch; reconnects after a drop."""

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
    ) -> None:
        self.description = f"SMTP {host}:{port} ({security})"
        self._options = {
            "hostname": host, "port": port, "timeout": timeout, "tls_context": tls_context,
            "use_tls": security == "tls", "start_tls": security == "starttls",
        }  # fmt: skip
        self._login = (username, password) if username and password else None
        self._smtp: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        try:
            await smtp.connect()
            if self._login:
                await smtp.login(*self._login)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise classify(exc) from exc
        self._smtp = smtp
        return smtp

    async def send(self, message: EmailMessage) -> None:
        """Send one message on the shared connection."""
        smtp = await self._connection()
        try:
            refused, _ = await smtp.send_message(message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            if not smtp.is_connected:
                self._smtp = None
            raise classify(exc) from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise classify_reply(code, text)

    async def close(self) -> None:
        """Say QUIT if still connected."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)[:80]


class OutboxMailer:
    """Writes each message to ``DIR/<recipient>_<id>.eml`` plus an HTML preview and ``index.html``.

    The file name comes from the Message-ID, so sending the same message again after a crash
    overwrites its file instead of adding a second one.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"outbox {directory}"

    async def __aenter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        write_index(self.directory)

    async def send(self, message: EmailMessage) -> None:
        """Write the message atomically (temp file, then rename)."""
        key = hashlib.sha256(str(message["Message-ID"]).encode()).hexdigest()[:10]
        stem = f"{_safe_name(message['To'].addresses[0].addr_spec)}_{key}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.directory / f"{stem}.eml", message.as_bytes())
            body = message.get_body(("html",))
            if body is not None:
                preview = body.get_content()  # type: ignore[attr-defined]
                _write_atomic(self.directory / f"{stem}.html", preview.encode())
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write to outbox {self.directory}: {exc}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_index(directory: Path) -> Path:
    """(Re)write ``index.html``: one line per message in the outbox, newest first."""
    rows = []
    for eml in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
        preview = eml.with_suffix(".html").name
        cells = (str(msg["Date"]), str(msg["To"]), str(msg["Subject"]))
        text = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        link = f'<td><a href="{html.escape(preview)}">preview</a> · <a href="{html.escape(eml.name)}">.eml</a></td>'
        rows.append(f"<tr>{text}{link}</tr>")
    page = (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>paperbot outbox</title>'
        "<style>body{font:15px system-ui,sans-serif;margin:2em}td,th{padding:.3em .8em;"
        "text-align:left;border-bottom:1px solid #ddd}</style><h1>paperbot outbox</h1>"
        f"<p>{len(rows)} message(s)</p><table><tr><th>Date</th><th>To</th><th>Subject</th>"
        f"<th></th></tr>{''.join(rows)}</table></html>\n"
    )
    index = directory / "index.html"
    _write_atomic(index, page.encode())
    return index
