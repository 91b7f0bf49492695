"""Paper ids as paperbot stores them: arXiv ids without their version, other ids as short safe
tokens (pure)."""

from __future__ import annotations

import re

MAX_ID = 100

_NEW_ID = re.compile(r"(\d{4}\.\d{4,5})(v\d+)?")
_OLD_ID = re.compile(r"([a-z-]+(?:\.[A-Za-z-]+)?/\d{7})(v\d+)?")
_ID_PREFIX = re.compile(
    r"^(?:oai:arxiv\.org:|arxiv:\s*|(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/"
    r"|(?:https?://(?:dx\.)?doi\.org/)?10\.48550/arxiv\.)",
    re.I,
)
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")


def arxiv_id(value: object) -> str | None:
    """The arXiv id without version (``2401.04088v2`` → ``2401.04088``), or None if it is not one.

    Accepts ``oai:arXiv.org:``/``arXiv:`` prefixes, abs/pdf URLs (``export.arxiv.org`` too, with
    or without the scheme), arXiv DOIs (``10.48550/arXiv.2401.04088``) and old-style ids
    (``hep-th/9901001v1`` → ``hep-th/9901001``), so that one paper has one id whatever the
    source wrote.
    """
    if not isinstance(value, str):
        return None
    text = _ID_PREFIX.sub("", value.strip()).rstrip("/").removesuffix(".pdf")
    for pattern in (_NEW_ID, _OLD_ID):
        match = pattern.fullmatch(text)
        if match:
            return match.group(1)
    return None


def paper_id(value: object) -> str | None:
    """A usable paper id: the arXiv id without version when it is one, else a short safe token."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    found = arxiv_id(value)
    if found:
        return found
    text = value.strip()
    if len(text) > MAX_ID or not _SAFE_ID.fullmatch(text):
        return None
    return text
