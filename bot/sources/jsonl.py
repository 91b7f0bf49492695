"""The ``sample`` and ``file:PATH`` sources: papers as JSON Lines (the Papers-file contract).

Each line is an object with at least ``id``, ``title`` and ``abstract``; a bad line is skipped with
a reason naming the file and line number, and an optional field that cannot be used as written
(``"upvotes": "many"``) is left out of its paper with a warning naming the file, line and field
(a single string where a list belongs is read as a list of one). The output of
``paperbot papers --format jsonl`` reads back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from bot import ids
from bot.errors import SourceError
from bot.models import Paper
from bot.sources import clean
from bot.sources.base import ParseResult, parse_datetime, undecoded_fields

SAMPLE_RESOURCE = "sample-papers.jsonl"


T = TypeVar("T")
SHOWN = 40
"""Longest value quoted in a warning about a field."""


def _shown(value: object) -> str:
    """A value as JSON, shortened for a warning."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class _Fields:
    """The optional fields of one Papers-file object, read with a note for each value that is
    left out or read differently (a field that is absent, null or "" is simply not there)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.notes: list[str] = []

    def _given(self, name: str) -> object:
        value = self.obj.get(name)
        return None if isinstance(value, str) and not value.strip() else value

    def value(self, name: str, read: Callable[[object], T | None], expected: str) -> T | None:
        """The field read by ``read``; a value it refuses is noted and left out."""
        value = self._given(name)
        if value is None:
            return None
        found = read(value)
        if found is None:
            self.notes.append(f"{name}: expected {expected}, got {_shown(value)}; left out")
        return found

    def names(self, name: str, limit: int, length: int = clean.MAX_AUTHOR) -> tuple[str, ...]:
        """A list of strings (see ``clean_names``); a single string is read as a list of one."""
        value = self._given(name)
        if value is None:
            return ()
        if isinstance(value, str):
            self.notes.append(f"{name}: a string, not a list; read as a list of one")
            value = [value]
        if not isinstance(value, list):
            self.notes.append(f"{name}: expected a list of strings, got {_shown(value)}; left out")
            return ()
        others = [v for v in value if not isinstance(v, str)]
        if others:
            what = "entry that is" if len(others) == 1 else "entries that are"
            first = _shown(others[0])
            self.notes.append(f"{name}: left out {len(others)} {what} not a string ({first})")
        return clean.clean_names(value, limit, length)


def paper_from_json(obj: dict[str, Any], source: str) -> tuple[Paper, list[str]] | str:
    """A Paper from one Papers-file object with a note for each optional field that could not be
    used as written, or the reason the object cannot be used at all."""
    pid = ids.paper_id(obj.get("id"))
    if pid is None:
        return "missing or invalid 'id'"
    title, abstract = clean.clean_title(obj.get("title")), clean.clean_abstract(obj.get("abstract"))
    if not title:
        return f"id {pid}: missing or empty 'title'"
    if not abstract:
        return f"id {pid}: missing or empty 'abstract'"
    abs_url, pdf_url = clean.arxiv_links(pid)
    fields = _Fields(obj)
    link, count = "an http(s) link", "a whole number of 0 or more"
    paper = Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=fields.names("authors", clean.MAX_AUTHORS),
        url=fields.value("url", clean.safe_url, link) or abs_url,
        pdf_url=fields.value("pdf_url", clean.safe_url, link) or pdf_url,
        published=fields.value("published", parse_datetime, "an ISO 8601 date"),
        categories=fields.names("categories", 50),
        upvotes=fields.value("upvotes", clean.as_count, count),
        source=clean.clean_text(fields.value("source", _text, "a string"), 60) or source,
        comments=fields.value("comments", clean.as_count, count),
        hf_url=fields.value("hf_url", clean.safe_url, link),
        code_url=fields.value("code_url", clean.safe_url, link),
        project_url=fields.value("project_url", clean.safe_url, link),
        ai_summary=clean.clean_abstract(fields.value("ai_summary", _text, "a string")) or None,
        keywords=fields.names("keywords", clean.MAX_KEYWORDS, clean.MAX_KEYWORD),
    )
    return paper, fields.notes


def parse_jsonl(data: bytes | str, *, source: str = "file", name: str = "<input>") -> ParseResult:
    """Parse JSON Lines into papers; blank lines are ignored, bad lines skipped with a reason."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    result, seen = ParseResult(), set[str]()
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        result.total += 1
        where = f"{name}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            result.skip(source, where, f"not valid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            result.skip(source, where, f"expected a JSON object, got {type(obj).__name__}")
            continue
        read = paper_from_json(obj, source)
        if isinstance(read, str):
            result.skip(source, where, read)
            continue
        paper, notes = read
        if result.add(source, where, paper, seen):
            for note in [*undecoded_fields(paper), *notes]:
                result.warn(source, where, note)
    return result.check_usable(source)


def read_papers_file(path: Path, *, source: str | None = None) -> ParseResult:
    """Parse a Papers file from disk; an unreadable file is a SourceError."""
    label = source or f"file:{path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(label, f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_jsonl(data, source="file", name=str(path))


def load_sample() -> ParseResult:
    """The bundled fictional sample day."""
    resource = resources.files("bot") / "data" / SAMPLE_RESOURCE
    try:
        data = resource.read_bytes()
    except OSError as exc:
        raise SourceError("sample", f"bundled {SAMPLE_RESOURCE} is missing: {exc}") from None
    return parse_jsonl(data, source="sample", name=SAMPLE_RESOURCE)
