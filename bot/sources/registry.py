"""Source specs and the fetch of a whole day from several sources at once.

``parse_spec("hf,arxiv:cs.LG+cs.CL")`` reads what operators type; ``fetch_papers`` fetches every
source concurrently, never lets one failure stop the others, merges papers by id (combining
fields: upvotes from one source, categories from another) and reports per source whether it
answered with papers, had no papers that day, or failed and why. A source that has not
answered within ``SOURCE_DEADLINE`` (a server that trickles its answer, a file on a hung mount)
has failed: the fetch goes on without it, and the next fetch tries it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import httpx

from bot.errors import ConfigError, SourceError
from bot.models import Paper, combine_papers
from bot.sources import arxiv, hf, jsonl
from bot.sources.base import ParseResult, Skipped, log
from bot.sources.http import Clock, Fetcher, HttpPolicy, make_client
from bot.stopping import in_thread

SOURCE_DEADLINE = 30 * 60.0
"""Seconds a source may take in all, its retries included (a server may ask to wait minutes
before each), before it counts as failed."""

Kind = Literal["sample", "file", "hf", "hf-html", "arxiv"]
KINDS: tuple[Kind, ...] = ("sample", "file", "hf", "hf-html", "arxiv")
SPEC_HELP = "use sample, file:PATH, hf, hf-html or arxiv:CAT[+CAT...], joined with commas"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One parsed source: its kind, plus the file path or arXiv categories it needs."""

    kind: Kind
    path: Path | None = None
    categories: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file:{self.path}"
        if self.kind == "arxiv":
            return "arxiv:" + "+".join(self.categories)
        return self.kind


def _one_spec(text: str) -> SourceSpec:
    name, _, arg = text.partition(":")
    name = name.strip().lower()
    if name == "file":
        if not arg.strip():
            raise ConfigError(f"invalid source {text!r}: file: needs a path ({SPEC_HELP})")
        return SourceSpec("file", path=Path(arg.strip()))
    if name == "arxiv":
        cats = tuple(c.strip() for c in arg.split("+") if c.strip())
        if not cats:
            raise ConfigError(f"invalid source {text!r}: arxiv: needs categories, e.g. arxiv:cs.LG")
        bad = [c for c in cats if not arxiv.CATEGORY.fullmatch(c)]
        if bad:
            raise ConfigError(f"invalid source {text!r}: {', '.join(bad)} is not an arXiv category")
        return SourceSpec("arxiv", categories=cats)
    if name in KINDS and not arg:
        return SourceSpec(name)
    raise ConfigError(f"invalid source {text!r}: {SPEC_HELP}")


def parse_spec(text: str) -> list[SourceSpec]:
    """Parse a comma-separated source SPEC; ConfigError says what is wrong and what is allowed."""
    specs: list[SourceSpec] = []
    for part in text.split(","):
        if not part.strip():
            raise ConfigError(f"invalid source list {text!r}: empty entry ({SPEC_HELP})")
        spec = _one_spec(part.strip())
        if spec not in specs:
            specs.append(spec)
    return specs


Status = Literal["ok", "empty", "failed"]
SKIPPED_SHOWN = 10
"""Items left out that a run's record names one by one (the log names every one)."""


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """How one source did: ``ok`` with a count, ``empty`` (no papers that day) or ``failed``."""

    source: str
    status: Status
    count: int = 0
    reason: str | None = None
    skipped: tuple[Skipped, ...] = ()

    def summary(self) -> dict[str, Any]:
        """The outcome as a run records it; the items left out are named (where, why), the first
        ``SKIPPED_SHOWN`` of them."""
        data: dict[str, Any] = {
            "source": self.source,
            "status": self.status,
            "count": self.count,
            "reason": self.reason,
        }
        if self.skipped:
            data["skipped"] = len(self.skipped)
            data["skipped_items"] = [str(s) for s in self.skipped_shown]
        return data

    @property
    def skipped_shown(self) -> tuple[Skipped, ...]:
        """The items left out that a run's record and ``paperbot fetch`` name one by one."""
        return self.skipped[:SKIPPED_SHOWN]

    def __str__(self) -> str:
        if self.status == "failed":
            return f"{self.source}: failed: {self.reason}"
        text = (
            f"{self.source}: {self.count} papers"
            if self.status == "ok"
            else f"{self.source}: no papers"
        )
        extra = [self.reason] if self.reason else []
        if self.skipped:
            extra.append(f"{len(self.skipped)} skipped")
        return text + (f" ({'; '.join(extra)})" if extra else "")


@dataclass(slots=True)
class FetchReport:
    """The merged papers of one fetch and what each source did."""

    papers: list[Paper] = field(default_factory=list)
    outcomes: list[SourceOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[SourceOutcome]:
        """The sources that failed."""
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def all_failed(self) -> bool:
        """True when there were sources and every one failed."""
        return every_source_failed(self.outcomes)


def every_source_failed(outcomes: Collection[SourceOutcome]) -> bool:
    """True when there are outcomes and every one is a failure: of one fetch, or of several
    (a worker's fetch of two days)."""
    return bool(outcomes) and all(o.status == "failed" for o in outcomes)


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """Knobs for the sources (the operator's settings map onto these)."""

    include_replacements: bool = False
    hf_page_size: int = hf.PAGE_SIZE
    hf_max_pages: int = hf.MAX_PAGES
    policy: HttpPolicy = field(default_factory=HttpPolicy)
    deadline: float = SOURCE_DEADLINE


async def _hf_with_fallback(fetcher: Fetcher, day: date, options: SourceOptions) -> ParseResult:
    try:
        return await hf.fetch_hf(
            fetcher, day, page_size=options.hf_page_size, max_pages=options.hf_max_pages
        )
    except SourceError as exc:
        api_error = exc.detail
    log.warning("source hf: %s; trying the Daily Papers page instead", api_error)
    try:
        result = await hf.fetch_hf_html(fetcher, day)
    except SourceError as page_error:
        raise SourceError("hf", f"API: {api_error}; page: {page_error.detail}") from None
    result.note = f"used the Daily Papers page because the API failed: {api_error}"
    return result


async def fetch_one(
    spec: SourceSpec, day: date, fetcher: Fetcher, options: SourceOptions
) -> ParseResult:
    """Fetch and parse one source; raises SourceError when it cannot deliver."""
    if spec.kind == "sample":
        return jsonl.load_sample()
    if spec.kind == "file":
        assert spec.path is not None
        return await in_thread(jsonl.read_papers_file, spec.path)  # a FIFO may never answer
    if spec.kind == "hf":
        return await _hf_with_fallback(fetcher, day, options)
    if spec.kind == "hf-html":
        return await hf.fetch_hf_html(fetcher, day)
    return await arxiv.fetch_arxiv(
        fetcher, list(spec.categories), include_replacements=options.include_replacements
    )


async def _outcome(
    spec: SourceSpec, day: date, fetcher: Fetcher, options: SourceOptions
) -> tuple[list[Paper], SourceOutcome]:
    name = str(spec)
    deadline = asyncio.timeout(options.deadline)
    try:
        async with deadline:
            result = await fetch_one(spec, day, fetcher, options)
    except SourceError as exc:  # the outcome names the source: its reason need not
        log.error("source %s failed: %s", name, exc.detail)
        return [], SourceOutcome(name, "failed", reason=exc.detail)
    except Exception as exc:  # a bug in one source must not stop the others
        if isinstance(exc, TimeoutError) and deadline.expired():
            within = (
                f"{options.deadline / 60:g} min"
                if options.deadline >= 60
                else f"{options.deadline:g} s"
            )
            reason = f"no answer within {within} (tried again at the next fetch)"
            log.error("source %s failed: %s", name, reason)
            return [], SourceOutcome(name, "failed", reason=reason)
        log.exception("source %s failed unexpectedly", name)
        return [], SourceOutcome(name, "failed", reason=f"unexpected {type(exc).__name__}: {exc}")
    status: Status = "ok" if result.papers else "empty"
    outcome = SourceOutcome(name, status, len(result.papers), result.note, tuple(result.skipped))
    return result.papers, outcome


async def fetch_papers(
    specs: Sequence[SourceSpec],
    day: date,
    *,
    client: httpx.AsyncClient | None = None,
    options: SourceOptions | None = None,
    clock: Clock | None = None,
) -> FetchReport:
    """Fetch every source for ``day``, merge papers by id, and report each source's outcome."""
    options = options or SourceOptions()
    own_client = client is None
    http = client or make_client()
    try:
        fetcher = Fetcher(http, policy=options.policy, clock=clock)
        results = await asyncio.gather(*(_outcome(s, day, fetcher, options) for s in specs))
    finally:
        if own_client:
            await http.aclose()
    return FetchReport(
        papers=merge_papers([papers for papers, _ in results]),
        outcomes=[outcome for _, outcome in results],
    )


def merge_papers(lists: Sequence[Sequence[Paper]]) -> list[Paper]:
    """Merge papers from several sources by id, in first-seen order, combining their fields."""
    merged: dict[str, Paper] = {}
    for papers in lists:
        for paper in papers:
            known = merged.get(paper.id)
            merged[paper.id] = paper if known is None else combine_papers(known, paper)
    return list(merged.values())
