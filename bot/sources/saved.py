"""Saved responses (``paperbot papers --input FILE``) through the same parsers as live fetches.

The format is sniffed from the content: a JSON list or ``{"dailyPapers": …}`` is the Hugging Face
API, other JSON objects are Papers-file lines, a feed root (``<rss>``, ``<feed>``) is arXiv, and
other markup is the Hugging Face Daily Papers page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.errors import ConfigError, SourceError
from bot.sources import arxiv, hf, jsonl
from bot.sources.base import ParseResult

Format = str  # one of FORMATS
FORMATS = ("hf", "hf-html", "arxiv", "jsonl")
_HINTS = {"hf": "hf", "hf-html": "hf-html", "arxiv": "arxiv", "file": "jsonl", "jsonl": "jsonl"}
_FEED_ROOT = re.compile(rb"<(rss|feed|rdf:rdf)[\s>]")
_HTML = re.compile(rb"<(!doctype\s+html|html|head|body|div|main)[\s>]")
_FAMILY = {"hf": "json", "jsonl": "json", "hf-html": "markup", "arxiv": "markup"}


def _sniff_json(data: bytes) -> Format:
    if data[:1] == b"[":
        return "hf"  # a list, even a broken one (cut short, stray bytes): Papers files hold objects
    try:
        body = json.loads(data.decode("utf-8", errors="replace"))
    except json.JSONDecodeError:
        return "jsonl"  # several lines, or broken: the JSON Lines parser reports each line
    if isinstance(body, dict) and ("id" in body or "title" in body):
        return "jsonl"  # one Papers-file line
    return "hf"


def sniff_format(data: bytes) -> Format:
    """Which parser a saved response needs: ``hf``, ``hf-html``, ``arxiv`` or ``jsonl``."""
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"[", b"{"):
        return _sniff_json(text)
    if text[:1] == b"<":
        head = text[:4096].lower()
        feed, page = _FEED_ROOT.search(head), _HTML.search(head)
        if feed and (page is None or feed.start() < page.start()):
            return "arxiv"
        return "hf-html"
    raise SourceError("input", "cannot tell the format: expected JSON, JSON Lines, HTML or a feed")


def _hinted(hint: str) -> Format:
    key = hint.strip().lower().split(":", 1)[0]
    if key not in _HINTS:
        raise ConfigError(f"cannot parse saved input as {hint!r}: use hf, hf-html, arxiv or file")
    return _HINTS[key]


def _choose(data: bytes, hint: str | None) -> Format:
    found = sniff_format(data)
    if hint is None or hint.strip().lower() in ("", "auto"):
        return found
    wanted = _hinted(hint)
    if wanted in ("hf", "hf-html") and found in ("hf", "hf-html"):
        return found  # the API JSON and the page hold the same list
    if _FAMILY[wanted] != _FAMILY[found]:
        raise SourceError("input", f"the input looks like {found} content, not {hint}")
    return wanted


def parse_input(
    source: Path | bytes | str,
    source_hint: str | None = None,
    *,
    include_replacements: bool = False,
) -> ParseResult:
    """Parse a saved response (a path or its content); the format is sniffed unless hinted."""
    name = "<input>"
    if isinstance(source, Path):
        name = str(source)
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise SourceError("input", f"cannot read {source}: {exc.strerror or exc}") from None
    else:
        data = source.encode("utf-8") if isinstance(source, str) else source
    if not data.strip():
        raise SourceError("input", f"{name} is empty")
    kind = _choose(data, source_hint)
    if kind == "hf":
        return hf.parse_hf_json(data)
    if kind == "hf-html":
        return hf.parse_hf_html(data)
    if kind == "arxiv":
        return arxiv.parse_arxiv_feed(data, include_replacements=include_replacements)
    return jsonl.parse_jsonl(data, source="file", name=name)
