"""The outbox backend: every message written to a directory, with an HTML index to read them."""

from __future__ import annotations

import hashlib
import html
import os
import re
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Self

from bot.errors import ConfigError, TemporaryDeliveryError
from bot.message import Outgoing, html_part
from bot.text import plural

INDEX = "index.html"
_HEADERS = BytesHeaderParser(policy=policy.default)


def safe_name(text: str) -> str:
    """``text`` (an address) as part of a file name: unusual characters as ``_``, cut at 80."""
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)[:80]


class OutboxMailer:
    """Writes each message to ``DIR/<recipient>_<id>.eml`` plus an HTML preview and ``index.html``.

    The file name comes from the Message-ID, so sending the same message again after a crash
    overwrites its file instead of adding a second one.
    """

    concurrency = 1  # file writes are quick; one writer keeps the index consistent

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"the outbox directory {directory}/"
        self.index = directory / INDEX
        self.previews: list[Path] = []
        """The HTML previews written, in order."""
        self.written = False
        """Whether a message was written since the mailer was opened (the index is out of date)."""

    async def __aenter__(self) -> Self:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"invalid settings:\n  PAPERBOT_OUTBOX: cannot use {self.directory}: {exc.strerror}"
            ) from None
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Bring the index up to date: after messages were written, or when there is none yet
        (a worker opens the mailer at every sweep, and most sweeps send nothing)."""
        if self.written or not self.index.exists():
            write_index(self.directory)

    async def send(self, message: Outgoing) -> None:
        """Write the message atomically (temp file, then rename)."""
        key = hashlib.sha256(message.message_id.encode()).hexdigest()[:10]
        stem = f"{safe_name(message.recipient)}_{key}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.directory / f"{stem}.eml", message.data)
            self.written = True
            preview = html_part(message.data)
            if preview is not None:
                _write_atomic(self.directory / f"{stem}.html", preview.encode())
                self.previews.append(self.directory / f"{stem}.html")
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write to outbox {self.directory}: {exc}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _header_section(path: Path) -> bytes:
    """The bytes of a message file up to the blank line that ends its headers."""
    head = b""
    with path.open("rb") as file:
        while chunk := file.read(4096):
            head += chunk
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                return head[: end + 4]
    return head


_INDEX_STYLE = (
    ":root{color-scheme:light dark}"
    "body{font:15px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:.3em .8em;text-align:left;vertical-align:top;border-bottom:1px solid #8886;"
    "overflow-wrap:anywhere}"
    "@media (max-width:600px){body{margin:1em}tr:first-child{display:none}"
    "td{display:block;padding:0 0 .2em;border:0}tr{display:block;padding:.6em 0;"
    "border-bottom:1px solid #8886}}"
)
"""The index's stylesheet: a table on a wide screen; on a phone each message a block of lines
(four columns do not fit), long addresses and subjects wrapped anywhere rather than overflowing;
light or dark as the reader's system is."""


def write_index(directory: Path) -> Path:
    """(Re)write ``index.html``: one line per message in the outbox, newest first. Only the
    header section of each message is read: the outbox holds every message ever written."""
    rows = []
    for eml in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        msg = _HEADERS.parsebytes(_header_section(eml))
        preview = eml.with_suffix(".html").name
        cells = (str(msg["Date"]), str(msg["To"]), str(msg["Subject"]))
        text = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        link = (
            f'<td><a href="{html.escape(preview)}">preview</a> · '
            f'<a href="{html.escape(eml.name)}">.eml</a></td>'
        )
        rows.append(f"<tr>{text}{link}</tr>")
    page = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>paperbot outbox</title><style>{_INDEX_STYLE}</style><h1>paperbot outbox</h1>"
        f"<p>{plural(len(rows), 'message')}</p><table><tr><th>Date</th><th>To</th><th>Subject</th>"
        f"<th></th></tr>{''.join(rows)}</table></html>\n"
    )
    index = directory / INDEX
    _write_atomic(index, page.encode())
    return index
