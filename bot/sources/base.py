"""What every parser returns, and the JSON Lines form of a paper.

``ParseResult`` carries the papers, every item that was left out with the reason, and every field
of a kept item that could not be read, so one bad item never sinks a response and nothing is
dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from bot.errors import SourceError
from bot.models import Paper

log = logging.getLogger("bot.sources")


@dataclass(frozen=True, slots=True)
class Skipped:
    """One item a parser left out (or one field of a kept item it could not read): where it was
    (``item 3``, ``line 7``, an id) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(slots=True)
class ParseResult:
    """Papers parsed from one response, the items left out, the fields of kept items that could
    not be read, and how many items there were."""

    papers: list[Paper] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    total: int = 0
    note: str | None = None

    def skip(self, source: str, where: str, reason: str) -> None:
        """Record (and log) an item left out."""
        self.skipped.append(Skipped(where, reason))
        log.warning("source %s: skipped %s: %s", source, where, reason)

    def warn(self, source: str, where: str, problem: str) -> None:
        """Record (and log) a field of a kept item that was left out or read differently."""
        self.warnings.append(Skipped(where, problem))
        log.warning("source %s: %s: %s", source, where, problem)

    def add(self, source: str, where: str, paper: Paper, seen: set[str]) -> bool:
        """Keep ``paper`` unless its id was already kept from this response; whether it was."""
        if paper.id in seen:
            self.skip(source, where, f"duplicate id {paper.id}")
            return False
        seen.add(paper.id)
        self.papers.append(paper)
        return True

    def extend(self, other: ParseResult) -> None:
        """Append another page's result, dropping ids already present."""
        seen = {p.id for p in self.papers}
        for paper in other.papers:
            if paper.id not in seen:
                seen.add(paper.id)
                self.papers.append(paper)
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)
        self.total += other.total

    def check_usable(self, source: str) -> ParseResult:
        """Raise when items were present but none could be used: the shape has changed."""
        if self.total and not self.papers:
            first = self.skipped[0] if self.skipped else "no reason recorded"
            raise SourceError(source, f"none of the {self.total} items could be used ({first})")
        return self


REPLACEMENT = "\ufffd"
"""What bytes that are not UTF-8 become when a response is read anyway."""


def undecoded_fields(paper: Paper) -> list[str]:
    """Notes for the text fields of ``paper`` that held bytes that are not UTF-8 (read as
    U+FFFD), such as ``title: bytes that are not UTF-8 (shown as �)``."""
    texts = {"title": paper.title, "abstract": paper.abstract, "authors": " ".join(paper.authors)}
    return [
        f"{name}: bytes that are not UTF-8 (shown as {REPLACEMENT})"
        for name, text in texts.items()
        if REPLACEMENT in text
    ]


def parse_datetime(value: object) -> datetime | None:
    """An aware datetime from an ISO 8601 string (``Z`` allowed) or a date; naive means UTC."""
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, date):
        found = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and 0 < len(value) <= 64:
        try:
            found = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def paper_to_json(paper: Paper) -> dict[str, Any]:
    """The JSON Lines form of a paper: the contract's fields first, then what the source added."""
    data: dict[str, Any] = {
        "id": paper.id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "url": paper.url,
        "pdf_url": paper.pdf_url,
        "published": paper.published.isoformat() if paper.published else None,
        "categories": list(paper.categories),
        "upvotes": paper.upvotes,
        "source": paper.source,
    }
    extras: dict[str, Any] = {
        "comments": paper.comments,
        "hf_url": paper.hf_url,
        "code_url": paper.code_url,
        "project_url": paper.project_url,
        "ai_summary": paper.ai_summary,
        "keywords": list(paper.keywords),
    }
    data.update({key: value for key, value in extras.items() if value not in (None, [])})
    return data
