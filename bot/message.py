"""Build the message: headers, multipart/alternative, unsubscribe (pure).

``build_message`` writes the bytes that go on the wire (see ``bot.mime``) into an ``Outgoing``,
which is all a mailer needs: envelope addresses, Message-ID and data, written so that it goes
through SMTP as it is.

Unsubscribe tokens are ``<base64url(email)>.<hmac>``: the link can be verified without a lookup,
and the HMAC (PAPERBOT_SECRET_KEY) keeps anyone from unsubscribing someone else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.utils import format_datetime
from urllib.parse import quote

from bot.mime import (
    addr_spec,
    alternative,
    ascii_domain,
    ascii_words,
    header,
    mailbox_words,
    one_line,
    text_part,
    text_words,
)

_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
"""A dot-atom local part: what the email package would parse it to is the text itself."""
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def new_message_id(sender: Address) -> str:
    """A fresh, globally unique Message-ID in the sender's domain.

    96 random bits make a collision practically impossible; the ids need not be unpredictable,
    and ``random`` (reseeded in forked processes) spares a system call per message.
    """
    return f"<{random.getrandbits(96):024x}@{_domain(sender)}>"


def list_id(kind: str, sender: Address) -> str:
    """The List-Id of a kind of message: alerts, or digests (a quiet day's note is one too)."""
    name = "alerts" if kind == "alert" else "digests"
    return f"paperbot {name} <{name}.{_domain(sender)}>"


def _domain(sender: Address) -> str:
    """The sender's domain in ASCII, as ids are written."""
    return ascii_domain(sender.domain) if sender.domain else "localhost"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(secret: str, email: str) -> str:
    digest = hmac.new(secret.encode(), email.lower().encode(), hashlib.sha256).digest()
    return _b64(digest[:18])


def unsubscribe_token(secret: str, email: str) -> str:
    """A signed token naming ``email``; verify it with ``verify_token``."""
    return f"{_b64(email.lower().encode())}.{_signature(secret, email)}"


def verify_token(secret: str, token: str, previous: Sequence[str] = ()) -> str | None:
    """The email address a token was made for, or None if it is forged or malformed.

    A token signed with one of the ``previous`` secrets is good too: the links in emails sent
    before the secret changed keep working.
    """
    encoded, _, signature = token.strip().partition(".")
    try:
        email = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    signed = (hmac.compare_digest(signature, _signature(key, email)) for key in (secret, *previous))
    return email if signature and any(signed) else None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Where a recipient can unsubscribe: an https link (one-click), a mailto, or both."""

    url: str | None = None
    mailto: str | None = None

    @classmethod
    def for_recipient(
        cls, email: str, *, base_url: str | None, secret: str | None, mailto: str | None
    ) -> Unsubscribe:
        """The links for one recipient, from the settings that are set."""
        url = None
        if base_url and secret:
            url = f"{base_url}/unsubscribe?token={quote(unsubscribe_token(secret, email))}"
        mail = f"mailto:{mailto}?subject={quote('unsubscribe ' + email)}" if mailto else None
        return cls(url, mail)

    def header(self) -> str | None:
        """The List-Unsubscribe value, or None when there is nothing to offer."""
        links = [f"<{link}>" for link in (self.url, self.mailto) if link]
        return ", ".join(links) or None


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, and how it is identified; list headers when it has them."""

    sender: Address
    recipient: Address
    message_id: str
    date: datetime
    list_id: str | None = None
    unsubscribe: Unsubscribe = Unsubscribe()
    reply_to: Address | None = None
    """Where replies go when that is not the sender: the contact the footer names."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to send: envelope addresses, Message-ID, and the RFC 5322 bytes (CRLF)."""

    sender: str
    recipient: str
    message_id: str
    subject: str
    data: bytes
    transparent: bool = False
    """Whether ``data`` has CRLF line ends only and no line that starts with a dot, so that it
    goes through SMTP's DATA as it is: ``build_message`` writes every message so."""


def html_part(data: bytes) -> str | None:
    """The HTML part of a message as written (decoded, with newline line ends), if it has one.

    Read with the ``compat32`` policy, as ``get_content`` decodes a text part: the default
    policy parses every header into objects, which costs several times more, and the outbox
    does this for every message it writes."""
    for part in message_from_bytes(data, policy=policy.compat32).walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes), "a text part decodes to bytes"
            text = payload.decode(part.get_content_charset("ascii"), errors="replace")
            return text.replace("\r\n", "\n")
    return None


def recipient(email: str, name: str | None) -> Address:
    """The To address with a header-safe display name.

    A plain ``local@domain`` is split here; parsing it with the email package costs some 50
    microseconds a message, so only the unusual addresses (quoted local parts, say) go there.
    """
    display = one_line(name or "")
    local, _, domain = email.rpartition("@")
    if _PLAIN_LOCAL.fullmatch(local) and _PLAIN_DOMAIN.fullmatch(domain):
        return Address(display_name=display, username=local, domain=domain)
    return Address(display_name=display, addr_spec=email)


def _headers(envelope: Envelope, subject: str) -> bytes:
    """The header section, list headers included when the envelope has them."""
    lines = [
        header("Subject", text_words(subject)),
        header("From", mailbox_words(envelope.sender)),
        header("To", mailbox_words(envelope.recipient)),
        *([header("Reply-To", mailbox_words(envelope.reply_to))] if envelope.reply_to else []),
        header("Date", [format_datetime(envelope.date)]),
        header("Message-ID", ascii_words(envelope.message_id)),
    ]
    if envelope.list_id:
        lines.append(header("List-Id", ascii_words(envelope.list_id)))
    links = envelope.unsubscribe.header()
    if links:
        lines.append(header("List-Unsubscribe", ascii_words(links)))
    if envelope.unsubscribe.url:
        lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    lines.append(b"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n")
    return b"".join(lines)


def build_message(envelope: Envelope, subject: str, text: str, html: str | None = None) -> Outgoing:
    """multipart/alternative (text/plain first, text/html second), or text/plain alone."""
    subject = one_line(subject)
    if html is None:
        body = text_part("plain", text)
    else:
        body = alternative([text_part("plain", text), text_part("html", html)])
    return Outgoing(
        sender=addr_spec(envelope.sender),
        recipient=addr_spec(envelope.recipient),
        message_id=one_line(envelope.message_id),
        subject=subject,
        data=_headers(envelope, subject) + body,
        transparent=True,
    )
