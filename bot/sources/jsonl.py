"""The ``sample`` and ``file:PATH`` sources: papers as JSON Lines (the Papers-file contract).

Each line is an object with at least ``id``, ``title`` and ``abstract``; a bad line is skipped with
a reason naming the file and line number. The output of ``paperbot papers --format jsonl`` reads
back unchanged.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from bot import ids
from bot.errors import SourceError
from bot.models import Paper
from bot.sources import clean
from bot.sources.base import ParseResult, parse_datetime

SAMPLE_RESOURCE = "sample-papers.jsonl"


def paper_from_json(obj: dict[str, Any], source: str) -> Paper | str:
    """A Paper from one Papers-file object, or the reason it cannot be used."""
    pid = ids.paper_id(obj.get("id"))
    if pid is None:
        return "missing or invalid 'id'"
    title, abstract = clean.clean_title(obj.get("title")), clean.clean_abstract(obj.get("abstract"))
    if not title:
        return "missing or empty 'title'"
    if not abstract:
        return "missing or empty 'abstract'"
    abs_url, pdf_url = clean.arxiv_links(pid)
    categories = obj.get("categories")
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=clean.clean_names(obj.get("authors")),
        url=clean.safe_url(obj.get("url")) or abs_url,
        pdf_url=clean.safe_url(obj.get("pdf_url")) or pdf_url,
        published=parse_datetime(obj.get("published")),
        categories=clean.clean_names(categories, 50) if isinstance(categories, list) else (),
        upvotes=clean.as_count(obj.get("upvotes")),
        source=clean.clean_text(obj.get("source"), 60) or source,
        comments=clean.as_count(obj.get("comments")),
        hf_url=clean.safe_url(obj.get("hf_url")),
        code_url=clean.safe_url(obj.get("code_url")),
        project_url=clean.safe_url(obj.get("project_url")),
        ai_summary=clean.clean_abstract(obj.get("ai_summary")) or None,
        keywords=clean.clean_names(obj.get("keywords"), clean.MAX_KEYWORDS),
    )


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
        paper = paper_from_json(obj, source)
        if isinstance(paper, str):
            result.skip(source, where, paper)
        else:
            result.add(source, where, paper, seen)
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
