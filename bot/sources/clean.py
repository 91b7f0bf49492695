"""Text and link cleaning shared by every source.

Whatever a source sends, what leaves this module is plain one-line text without markup, of sane
length, and links that are http(s) only. Math such as ``a < b`` survives: only real HTML tag
names are treated as markup.
"""

from __future__ import annotations

import html
import re

from bot.ids import arxiv_id
from bot.urls import safe_http_url

MAX_TITLE = 400
MAX_ABSTRACT = 6000
MAX_AUTHOR = 120
MAX_AUTHORS = 300
MAX_URL = 2000
MAX_KEYWORD = 80
MAX_KEYWORDS = 30

_HTML_TAGS = (
    "a|abbr|b|big|blockquote|body|br|button|center|code|dd|del|div|dl|dt|em|embed|font|form|"
    "h[1-6]|head|hr|html|i|iframe|img|input|ins|kbd|label|li|link|mark|math|meta|mi|mn|mo|mrow|"
    "msub|msup|mtext|nobr|object|ol|p|pre|q|s|samp|script|select|small|span|strike|strong|style|"
    "sub|sup|svg|table|tbody|td|textarea|tfoot|th|thead|title|tr|tt|u|ul|var|video|wbr"
)
_DANGEROUS = re.compile(
    r"<(script|style|iframe|object|textarea|title|svg)\b[^>]*>.*?(</\1\s*>|$)", re.I | re.S
)
_INLINE_TAGS = (
    "a|abbr|b|big|code|del|em|font|i|ins|kbd|mark|nobr|q|s|samp|small|span|strike|strong|sub|sup|"
    "tt|u|var|wbr"
)
_INLINE_TAG = re.compile(rf"</?(?:{_INLINE_TAGS})\b(?:\s[^<>]*)?/?>", re.I)
_TAG = re.compile(rf"</?(?:{_HTML_TAGS})\b(?:\s[^<>]*)?/?>", re.I)
_COMMENT = re.compile(r"<!--.*?(-->|$)", re.S)
# controls, zero-width characters, the bidirectional marks, and the embeddings, overrides and
# isolates that would show the rest of a line reversed (as "Trojan Source" text does)
_CONTROL = re.compile(
    r"[\x00-\x08\x0e-\x1f\x7f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_SPACE = re.compile(r"\s+")


def strip_markup(text: str) -> str:
    """Remove HTML tags, comments and entities; script/style bodies go with their tags."""
    for _ in range(2):  # twice: catches markup that was escaped once (``&lt;b&gt;``)
        text = html.unescape(text)
        text = _COMMENT.sub(" ", text)
        text = _DANGEROUS.sub(" ", text)
        text = _INLINE_TAG.sub("", text)  # H<sub>2</sub>O stays one word
        text = _TAG.sub(" ", text)
    return text


def one_line(text: str) -> str:
    """Collapse hard line breaks, tabs and runs of spaces into single spaces."""
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def cap(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` characters, at a word boundary, marking the cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def clean_text(value: object, limit: int) -> str:
    """Plain one-line text from any value: markup stripped, whitespace collapsed, length capped."""
    if not isinstance(value, str):
        return ""
    return cap(one_line(strip_markup(value)), limit)


def clean_title(value: object) -> str:
    """A cleaned title ("" when there is none)."""
    return clean_text(value, MAX_TITLE)


def clean_abstract(value: object) -> str:
    """A cleaned abstract ("" when there is none)."""
    return clean_text(value, MAX_ABSTRACT)


def clean_names(
    values: object, limit: int = MAX_AUTHORS, length: int = MAX_AUTHOR
) -> tuple[str, ...]:
    """At most ``limit`` cleaned, non-empty, de-duplicated names of at most ``length``
    characters from a list of strings (other values ignored)."""
    if not isinstance(values, list | tuple):
        return ()
    names: list[str] = []
    for value in values:
        name = clean_text(value, length)
        if name and name not in names:
            names.append(name)
        if len(names) >= limit:
            break
    return tuple(names)


def safe_url(value: object) -> str | None:
    """The URL if an email may show it (the rule of ``bot.urls``), else None (``javascript:``…)."""
    if not isinstance(value, str):
        return None
    url = one_line(html.unescape(value))
    if not url or len(url) > MAX_URL:
        return None
    return safe_http_url(url)


def arxiv_links(pid: str) -> tuple[str | None, str | None]:
    """The abstract page and PDF links on arXiv for an arXiv id; (None, None) for other ids."""
    if arxiv_id(pid) != pid:
        return None, None
    return f"https://arxiv.org/abs/{pid}", f"https://arxiv.org/pdf/{pid}"


def as_count(value: object) -> int | None:
    """A non-negative int count, or None (bools, floats with fractions and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
