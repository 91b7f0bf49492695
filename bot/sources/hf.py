"""The ``hf`` and ``hf-html`` sources: Hugging Face Daily Papers, from the JSON API or the page.

The API (``/api/daily_papers?date=…&limit=…&p=…``) and the page (``/papers/date/…``, whose
``data-target="DailyPapers"`` element carries the list as JSON in ``data-props``) hold the same
items, so both go through ``parse_hf_items``. An empty list is a day without papers; a page whose
shape changed is a SourceError saying what was missing.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from bs4 import BeautifulSoup

from bot import ids
from bot.errors import SourceError
from bot.models import Paper
from bot.sources import clean
from bot.sources.base import ParseResult, log, parse_datetime, undecoded_fields
from bot.sources.http import Fetcher

API_URL = "https://huggingface.co/api/daily_papers"
PAGE_URL = "https://huggingface.co/papers/date/{day}"
PAPER_URL = "https://huggingface.co/papers/{id}"
PAGE_SIZE = 50
MAX_PAGES = 10


def _paper_object(item: dict[str, Any]) -> dict[str, Any] | None:
    inner = item.get("paper")
    if isinstance(inner, dict):
        return inner
    return item if "id" in item and ("title" in item or "summary" in item) else None


def _author_names(authors: object) -> tuple[str, ...]:
    if not isinstance(authors, list):
        return ()
    return clean.clean_names([a.get("name") if isinstance(a, dict) else a for a in authors])


def hf_item_to_paper(item: object, source: str = "hf") -> Paper | str:
    """A Paper from one Daily Papers item (``{"paper": {...}, "numComments": …}``) or a reason."""
    if not isinstance(item, dict):
        return f"expected an object, got {type(item).__name__}"
    paper = _paper_object(item)
    if paper is None:
        return "no 'paper' object"
    pid = ids.paper_id(paper.get("id"))
    if pid is None:
        return f"missing or invalid paper id {str(paper.get('id'))[:40]!r}"
    title = clean.clean_title(paper.get("title") or item.get("title"))
    abstract = clean.clean_abstract(paper.get("summary") or item.get("summary"))
    if not title or not abstract:
        return f"{pid}: missing {'title' if not title else 'summary'}"
    abs_url, pdf_url = clean.arxiv_links(pid)
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=_author_names(paper.get("authors")),
        url=abs_url,
        pdf_url=pdf_url,
        published=parse_datetime(paper.get("publishedAt") or item.get("publishedAt")),
        upvotes=clean.as_count(paper.get("upvotes")),
        source=source,
        comments=clean.as_count(item.get("numComments")),
        hf_url=PAPER_URL.format(id=pid),
        code_url=clean.safe_url(paper.get("githubRepo")),
        project_url=clean.safe_url(paper.get("projectPage")),
        ai_summary=clean.clean_abstract(paper.get("ai_summary")) or None,
        keywords=clean.clean_names(paper.get("ai_keywords"), clean.MAX_KEYWORDS, clean.MAX_KEYWORD),
    )


def parse_hf_items(items: list[Any], source: str = "hf") -> ParseResult:
    """Papers from a list of Daily Papers items; bad or repeated items are skipped with a reason."""
    result, seen = ParseResult(total=len(items)), set[str]()
    for number, item in enumerate(items, start=1):
        paper = hf_item_to_paper(item, source)
        if isinstance(paper, str):
            result.skip(source, f"item {number}", paper)
        elif result.add(source, f"item {number}", paper, seen):
            for note in undecoded_fields(paper):
                result.warn(source, f"item {number} ({paper.id})", note)
    return result.check_usable(source)


def _load_json(data: bytes | str, source: str, what: str) -> Any:
    """JSON from a response; bytes that are not UTF-8 are read as U+FFFD, so that one paper
    with a stray byte does not cost the others (its fields are then noted)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise SourceError(source, f"{what} is not valid JSON ({exc})") from None


def parse_hf_json(data: bytes | str, source: str = "hf") -> ParseResult:
    """Parse a ``/api/daily_papers`` response: a JSON list of items (``[]`` on days without)."""
    body = _load_json(data, source, "the response")
    if isinstance(body, dict) and isinstance(body.get("dailyPapers"), list):
        body = body["dailyPapers"]
    if isinstance(body, dict):
        if "error" in body:
            raise SourceError(source, f"API error: {clean.clean_text(body['error'], 200)}")
        keys = ", ".join(sorted(str(k) for k in body)[:8]) or "none"
        raise SourceError(source, f"expected a JSON list of daily papers, got an object ({keys})")
    if not isinstance(body, list):
        raise SourceError(
            source, f"expected a JSON list of daily papers, got {type(body).__name__}"
        )
    return parse_hf_items(body, source)


def _looks_like_items(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and isinstance(v.get("paper"), dict) for v in value)
    )


def _find_items(props: dict[str, Any], depth: int = 3) -> list[Any] | None:
    """The ``dailyPapers`` list, or (tolerating a renamed or nested key) a list of paper items."""
    found = props.get("dailyPapers")
    if isinstance(found, list):
        return found
    for value in props.values():
        if _looks_like_items(value):
            return list(value)
        if isinstance(value, dict) and depth > 1:
            nested = _find_items(value, depth - 1)
            if nested is not None:
                return nested
    return None


def parse_hf_html(data: bytes | str, source: str = "hf-html") -> ParseResult:
    """Parse the Daily Papers page: the list is JSON in the ``DailyPapers`` element's data-props."""
    soup = BeautifulSoup(data, "html.parser")
    element = soup.select_one('[data-target="DailyPapers"]')
    if element is None:
        raise SourceError(source, 'page has no element with data-target="DailyPapers"')
    raw = element.get("data-props")
    if not isinstance(raw, str) or not raw.strip():
        raise SourceError(source, "the DailyPapers element has no data-props attribute")
    props = _load_json(raw, source, "DailyPapers data-props")
    if not isinstance(props, dict):
        raise SourceError(source, "DailyPapers data-props is not a JSON object")
    items = _find_items(props)
    if items is None:
        keys = ", ".join(sorted(props)[:10]) or "none"
        raise SourceError(
            source, f"DailyPapers data-props has no 'dailyPapers' list (keys: {keys})"
        )
    return parse_hf_items(items, source)


async def fetch_hf(
    fetcher: Fetcher, day: date, *, page_size: int = PAGE_SIZE, max_pages: int = MAX_PAGES
) -> ParseResult:
    """Every page of the day's list from the API, until a page is empty or brings nothing new.

    A short page does not end the list: the server may cap ``limit`` below what was asked.
    """
    result = ParseResult()
    for page in range(max_pages):
        params: dict[str, str | int] = {"date": day.isoformat(), "limit": page_size, "p": page}
        body = await fetcher.get("hf", API_URL, params=params, accept=("json",))
        part = parse_hf_json(body)
        before = len(result.papers)
        result.extend(part)
        if part.total == 0 or len(result.papers) == before:
            return result
    log.warning("source hf: stopped after %d pages of %d for %s", max_pages, page_size, day)
    return result


async def fetch_hf_html(fetcher: Fetcher, day: date) -> ParseResult:
    """The day's list from the Daily Papers page."""
    url = PAGE_URL.format(day=day.isoformat())
    body = await fetcher.get("hf-html", url, accept=("html",))
    return parse_hf_html(body)
