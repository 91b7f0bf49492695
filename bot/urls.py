"""The one rule for links that may reach an email: absolute http(s) with a host (pure)."""

from __future__ import annotations

from urllib.parse import urlsplit


def http_url(url: str) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host, else None (``javascript:``…)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url
