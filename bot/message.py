"""Build the EmailMessage: headers, multipart/alternative, unsubscribe (pure).

Unsubscribe tokens are ``<base64url(email)>.<hmac>``: the link can be verified without a lookup,
and the HMAC (PAPERBOT_SECRET_KEY) keeps anyone from unsubscribing someone else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import quote

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(value: str) -> str:
    """A header-safe value: CR, LF and other control characters never reach a header."""
    return _CONTROL.sub(" ", value).strip()


def new_message_id(sender: Address) -> str:
    """A fresh, globally unique Message-ID in the sender's domain."""
    return f"<{uuid.uuid4().hex[:24]}@{sender.domain or 'localhost'}>"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(secret: str, email: str) -> str:
    digest = hmac.new(secret.encode(), email.lower().encode(), hashlib.sha256).digest()
    return _b64(digest[:18])


def unsubscribe_token(secret: str, email: str) -> str:
    """A signed token naming ``email``; verify it with ``verify_token``."""
    return f"{_b64(email.lower().encode())}.{_signature(secret, email)}"


def verify_token(secret: str, token: str) -> str | None:
    """The email address a token was made for, or None if it is forged or malformed."""
    encoded, _, signature = token.strip().partition(".")
    try:
        email = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    expected = _signature(secret, email)
    return email if signature and hmac.compare_digest(signature, expected) else None


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
    """Who a message is from and to, and how it is identified."""

    sender: Address
    recipient: Address
    message_id: str
    date: datetime
    list_id: str
    unsubscribe: Unsubscribe


def recipient(email: str, name: str | None) -> Address:
    """The To address with a header-safe display name."""
    return Address(display_name=one_line(name or ""), addr_spec=email)


def build_message(envelope: Envelope, subject: str, text: str, html: str) -> EmailMessage:
    """multipart/alternative: text/plain first, text/html second, with list headers."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = one_line(subject)
    msg["From"] = envelope.sender
    msg["To"] = envelope.recipient
    msg["Date"] = format_datetime(envelope.date)
    msg["Message-ID"] = one_line(envelope.message_id)
    msg["List-Id"] = one_line(envelope.list_id)
    header = envelope.unsubscribe.header()
    if header:
        msg["List-Unsubscribe"] = one_line(header)
    if envelope.unsubscribe.url:
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, subtype="plain", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg
