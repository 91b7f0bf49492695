"""The ``arxiv:CAT[+CAT…]`` source: arXiv's announcement feeds (RSS 2.0 or Atom), via feedparser.

Each entry's id ``oai:arXiv.org:<id>v<N>`` becomes the id without version; ``arxiv:announce_type``
says ``new``, ``cross``, ``replace`` or ``replace-cross`` (replacements are left out unless asked
for); ``dc:creator`` is one string of names; the summary's ``arXiv:… Announce Type: …`` and
``Abstract:`` prefixes are removed. Feeds are empty on days without announcements.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXException

import feedparser

from bot import ids
from bot.errors import SourceError
from bot.models import Paper
from bot.sources import clean
from bot.sources.base import ParseResult, log
from bot.sources.http import Fetcher

FEED_URL = "https://rss.arxiv.org/{kind}/{cats}"
REPLACEMENTS = frozenset({"replace", "replace-cross"})
CATEGORY = re.compile(r"[a-z-]+(\.[A-Za-z-]+)?")

_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*[\w-]+\s*", re.I)
_ABSTRACT = re.compile(r"^Abstract:\s*", re.I)
_ANNOUNCE = re.compile(r"Announce Type:\s*([\w-]+)", re.I)
_TITLE_SUFFIX = re.compile(r"\.?\s*\(arXiv:[^)]*\)\s*$")  # older feeds: "Title. (arXiv:… [cs.LG])"
_OLD_MARKS = {"UPDATED)": "replace", "CROSS LISTED)": "cross"}
_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "phd", "ph.d."})


def _split_top_level(text: str) -> list[str]:
    """Split on commas and semicolons that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char in ",;" and depth <= 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def split_creators(value: object) -> tuple[str, ...]:
    """Names from a ``dc:creator`` string: commas, "and", affiliations in parentheses, "Jr."."""
    text = clean.one_line(clean.strip_markup(value)) if isinstance(value, str) else ""
    names: list[str] = []
    for part in _split_top_level(text):
        for piece in re.split(r"\s+and\s+|^and\s+", part.strip()):
            name = re.sub(r"\s*\([^)]*\)\s*", " ", piece).strip()
            if name.lower() in _SUFFIXES and names:
                names[-1] = f"{names[-1]}, {name}"
            elif name:
                names.append(name)
    return clean.clean_names(names)


def _announce_type(entry: Any) -> str:
    declared = entry.get("arxiv_announce_type")
    if isinstance(declared, str) and declared.strip():
        return declared.strip().lower()
    found = _ANNOUNCE.search(str(entry.get("summary") or ""))
    if found:
        return found.group(1).lower()
    title = str(entry.get("title") or "").rstrip()
    return next((kind for mark, kind in _OLD_MARKS.items() if title.endswith(mark)), "new")


def _entry_id(entry: Any, summary: str) -> str | None:
    for candidate in (entry.get("id"), entry.get("link")):
        found = ids.arxiv_id(candidate)
        if found:
            return found
    match = re.match(r"\s*arXiv:(\S+)", summary)
    return ids.arxiv_id(match.group(1)) if match else None


def _authors(entry: Any) -> tuple[str, ...]:
    raw = entry.get("author")
    if not raw and isinstance(entry.get("authors"), list):
        raw = ", ".join(str(a.get("name", "")) for a in entry["authors"] if isinstance(a, dict))
    return split_creators(raw)


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


def entry_to_paper(entry: Any, source: str = "arxiv") -> Paper | str:
    """A Paper from one feedparser entry, or the reason it cannot be used."""
    raw_summary = str(entry.get("summary") or "")
    pid = _entry_id(entry, raw_summary)
    if pid is None:
        return f"no arXiv id in {str(entry.get('id'))[:60]!r}"
    title = _TITLE_SUFFIX.sub("", clean.clean_title(entry.get("title")))
    abstract = _ABSTRACT.sub("", _PREFIX.sub("", clean.clean_abstract(raw_summary)))
    if not title or not abstract:
        return f"{pid}: missing {'title' if not title else 'abstract'}"
    terms = [t.get("term") for t in entry.get("tags") or [] if isinstance(t, dict)]
    abs_url, pdf_url = clean.arxiv_links(pid)
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=_authors(entry),
        url=abs_url,
        pdf_url=pdf_url,
        published=_published(entry),
        categories=tuple(t for t in clean.clean_names(terms, 50) if CATEGORY.fullmatch(t)),
        source=source,
    )


def _check_feed(feed: Any, source: str) -> None:
    """Refuse what is not a feed, or is broken XML (a truncated feed would lose papers silently)."""
    problem = feed.get("bozo_exception")
    detail = f" ({clean.clean_text(str(problem), 200)})" if problem else ""
    if not feed.get("version"):
        raise SourceError(source, f"not an RSS or Atom feed{detail}")
    if isinstance(problem, SAXException):
        raise SourceError(source, f"the feed is malformed XML{detail}")
    if problem:
        log.info("source %s: feed parsed with a warning%s", source, detail)


def parse_arxiv_feed(
    data: bytes | str, *, include_replacements: bool = False, source: str = "arxiv"
) -> ParseResult:
    """Parse an arXiv RSS or Atom announcement feed; an empty feed is a day without papers."""
    feed = feedparser.parse(data.encode("utf-8") if isinstance(data, str) else data)
    _check_feed(feed, source)
    result, seen, replaced = ParseResult(), set[str](), 0
    for number, entry in enumerate(feed.entries, start=1):
        kind = _announce_type(entry)
        if kind in REPLACEMENTS and not include_replacements:
            replaced += 1
            continue
        result.total += 1
        paper = entry_to_paper(entry, source)
        if isinstance(paper, str):
            result.skip(source, f"entry {number}", paper)
        else:
            result.add(source, f"entry {number}", paper, seen)
    if replaced:
        log.info("source %s: left out %d replacements", source, replaced)
    return result.check_usable(source)


def feed_url(categories: list[str], kind: str = "rss") -> str:
    """The announcement feed URL for categories, e.g. ``…/rss/cs.LG+cs.CL``."""
    return FEED_URL.format(kind=kind, cats="+".join(categories))


async def fetch_arxiv(
    fetcher: Fetcher, categories: list[str], *, include_replacements: bool = False
) -> ParseResult:
    """The current announcement feed for the categories (arXiv has no per-date feed)."""
    body = await fetcher.get("arxiv", feed_url(categories), accept=("xml", "rss", "atom"))
    return parse_arxiv_feed(body, include_replacements=include_replacements)
