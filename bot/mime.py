"""The wire format of a message (pure): header lines, RFC 2047 words, quoted-printable parts.

The email package gets there through a tree of objects and a policy engine, which costs a few
milliseconds per message; a run writes thousands, so the few rules paperbot needs are applied here
directly, with CRLF line ends throughout (the tests read every message back with Python's parser):

- header lines are folded at spaces to at most 78 columns where the words allow it;
- non-ASCII text in a subject or display name becomes UTF-8 base64 encoded-words (RFC 2047), a
  display name with special characters is quoted, and no CR or LF ever reaches a header;
- bodies are UTF-8 quoted-printable (``binascii.b2a_qp``), which encodes each line on its own:
  lines are encoded one at a time and the most recent kept, since the lines of the templates and
  of shared paper cards recur from message to message;
- no line of a message starts with a dot (one that would is re-wrapped with the dot written as
  ``=2E``), so a message goes through SMTP's DATA as it is, without dot-stuffing;
- multipart boundaries begin with ``=_``, which quoted-printable text cannot contain, so a
  boundary only has to be unique, not secret (``random`` is reseeded in forked processes;
  ``os.urandom`` would cost a system call).
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import string
from email.headerregistry import Address
from functools import lru_cache
from urllib.parse import quote

import idna

MAX_LINE = 78
WORD_BYTES = 45
"""UTF-8 bytes per encoded-word: 60 base64 characters, 72 with the delimiters (at most 75)."""
LONGEST_WORD = 900
"""Longer words are encoded (and so can be split): no header line may pass 998 characters."""
QP_LINE = 76
"""Longest encoded body line, a soft line break's ``=`` included (RFC 2045)."""
QP_LINES = 8192
"""Encoded body lines kept for the next messages."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_PRINTABLE = string.punctuation + " "
_EQUALS = ord("=")


def one_line(value: str) -> str:
    """A header-safe value: CR, LF and other control characters never reach a header."""
    return _CONTROL.sub(" ", value).strip()


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 encoded-words (UTF-8, base64), never splitting a character."""
    data = text.encode("utf-8")
    words: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # inside a multi-byte character
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return words


def _plain(word: str) -> bool:
    return word.isascii() and "=?" not in word and len(word) <= LONGEST_WORD


def text_words(value: str) -> list[str]:
    """The words of an unstructured value (a subject); runs that need it become encoded-words."""
    out: list[str] = []
    run: list[str] = []
    for word in one_line(value).split():
        if _plain(word):
            if run:
                out += encoded_words(" ".join(run))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out += encoded_words(" ".join(run))
    return out


def ascii_words(value: str) -> list[str]:
    """The words of a structured value (a link, an id): never encoded-words, non-ASCII escaped."""
    value = one_line(value)
    return (value if value.isascii() else quote(value, safe=_PRINTABLE)).split()


def ascii_domain(domain: str) -> str:
    """A domain in ASCII: an internationalised one in IDNA 2008 form (UTS 46: ``straße.de`` is
    ``xn--strae-oqa.de``, not ``strasse.de`` as IDNA 2003 has it)."""
    return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")


def addr_spec(address: Address) -> str:
    """``local@domain`` in ASCII (see ``ascii_domain``)."""
    domain = ascii_domain(address.domain)
    spec = one_line(f"{address.username}@{domain}" if domain else address.username)
    if not spec.isascii():
        raise ValueError(f"cannot send to a non-ASCII mailbox without SMTPUTF8: {spec!r}")
    return spec


def mailbox_words(address: Address) -> list[str]:
    """A mailbox as header words: the display name (quoted or encoded as needed), ``<spec>``."""
    name, spec = one_line(address.display_name), addr_spec(address)
    if not name:
        return [spec]
    if not _plain(name):  # an ASCII "=?...?=" would be decoded by the reader: encode it too
        return [*encoded_words(name), f"<{spec}>"]
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return [*name.split(), f"<{spec}>"]


def header(name: str, words: list[str]) -> bytes:
    """One header field, folded before a word that would pass 78 columns; ends with CRLF."""
    if words:
        line = f"{name}: {' '.join(words)}"
        if len(line) <= MAX_LINE:  # most fields: one line, nothing to fold
            return (line + "\r\n").encode("ascii")
    lines: list[str] = []
    line = f"{name}:"
    for i, word in enumerate(words):
        if i and len(line) + 1 + len(word) > MAX_LINE:
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def quoted_printable(text: str) -> bytes:
    """``text`` as UTF-8 quoted-printable with CRLF line ends, ending with a line break."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()  # the empty string after the last line break
    return b"".join(map(_quoted_line, lines))


@lru_cache(maxsize=QP_LINES)
def _quoted_line(line: str) -> bytes:
    """One line (without its break) as quoted-printable, soft breaks included, and CRLF.

    ``b2a_qp`` may start an encoded line with a dot, and ends a line with ``=20`` for a space
    in its last columns, one past ``QP_LINE``; such a line is wrapped again.
    """
    encoded = binascii.b2a_qp((line + "\r\n").encode("utf-8"), istext=True)
    if (
        encoded.startswith(b".")
        or b"\n." in encoded
        or (len(encoded) > QP_LINE and any(len(x) > QP_LINE for x in encoded.split(b"\r\n")))
    ):
        return _rewrapped(encoded)
    return encoded


def _rewrapped(encoded: bytes) -> bytes:
    """An encoded line wrapped again within ``QP_LINE``, with ``=2E`` for a dot that would
    start a line: as many characters on each line as fit before the ``=`` of a soft break,
    never cutting an ``=XX`` escape."""
    data = encoded[:-2].replace(b"=\r\n", b"")
    lines: list[bytes] = []
    start = 0
    while True:
        if data[start : start + 1] == b".":
            data = data[:start] + b"=2E" + data[start + 1 :]
        end = start + QP_LINE - 1
        if end >= len(data):
            lines.append(data[start:])
            return b"\r\n".join(lines) + b"\r\n"
        if data[end - 1] == _EQUALS:
            end -= 1
        elif data[end - 2] == _EQUALS:
            end -= 2
        lines.append(data[start:end] + b"=")
        start = end


def text_part(subtype: str, text: str) -> bytes:
    """The Content-Type and encoding header lines, a blank line, and the encoded ``text``."""
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + quoted_printable(text)


def alternative(parts: list[bytes]) -> bytes:
    """A multipart/alternative entity (headers and body) holding ``parts``, simplest first."""
    boundary = f"=_{random.getrandbits(128):032x}".encode("ascii")  # unique, not secret
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return (
        b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n'
        + body + b"--" + boundary + b"--\r\n"
    )  # fmt: skip
