"""The rules of SMTP that need no connection: what a reply means, what a transaction writes (pure).

``classify_reply`` says what a reply means for the message; ``envelope_commands`` and
``data_payload`` write MAIL, RCPT, DATA and the message data; ``tls_failure``, ``TLS_FIRST`` and
``NO_AUTH`` say what to change when a session cannot be set up. ``bot.mailer`` talks to the
server with them.

Only a refusal of the recipient's mailbox blames the address (``RecipientDeliveryError``): a 5xx
to RCPT, unless its enhanced status is 5.7.x (a policy: relaying denied, sender not allowed), or
a 5xx to DATA with 5.1.x or 5.2.x (mailbox unknown or disabled). Any other 5xx refuses the
message; a 4xx, or 552 (mailbox full), refuses it for now.
"""

from __future__ import annotations

import re
import ssl
from typing import NamedTuple

from bot.errors import (
    AuthenticationDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    RecipientDeliveryError,
    SenderDeliveryError,
    TemporaryDeliveryError,
    TlsDeliveryError,
    caused_by,
)

TEMPORARY_5XX = {552}  # "mailbox full / exceeded storage": worth another try later
AUTH_CODES = {530, 534, 535, 538}
COMMANDS = ("MAIL", "RCPT", "DATA")
"""The commands of a transaction, as ``envelope_commands`` writes them."""
EXPECTED = ((250,), (250, 251), (354,))
"""The replies that let a transaction go on after each of ``COMMANDS``."""
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
_BARE_NEWLINE = re.compile(rb"(?<!\r)\n|\r(?!\n)")
_NOT_IN_PATH = re.compile(r"[\x00-\x20\x7f<>]")
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
TLS_FIRST = (
    "the server sent no greeting in plain text within {timeout:g} s and answers TLS instead: "
    "port {port} expects TLS from the first byte: set PAPERBOT_SMTP_SECURITY=tls (or starttls "
    "with the server's STARTTLS port, usually 587)"
)
"""What to change when a port sends no greeting in plain text and answers TLS instead."""
NO_AUTH = {
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


class Reply(NamedTuple):
    """One SMTP reply: its code and its text (lines joined with newlines)."""

    code: int
    text: str


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
