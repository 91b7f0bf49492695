"""The one rule for links that may reach an email: absolute http(s) with a host, and none of the
characters that would end or bend the link where it stands (pure)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_UNSAFE = re.compile(r"[\x00-\x20\x7f\"'<>\\`]")
"""Characters no link may hold: spaces and control characters, which end it in the plain text,
and quotes, angle brackets, the backslash and the backtick, which end or bend the HTML attribute
it stands in."""


def unsafe_in_link(link: str) -> bool:
    """Whether ``link`` (an http(s) or a ``mailto:`` one) holds a character no link may."""
    return _UNSAFE.search(link) is not None


def _http_url(url: str) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host, else None (``javascript:``…)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def safe_http_url(url: str) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host that holds no character a link
    may not, else None: what a source may store is what an email shows."""
    return None if unsafe_in_link(url) else _http_url(url)
