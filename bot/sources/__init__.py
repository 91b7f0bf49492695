"""Paper sources: each a pure ``parse_*`` over a response and a thin async ``fetch_*``.

    sample       the bundled fictional day            jsonl.load_sample
    file:PATH    JSON Lines (the Papers-file format)  jsonl.parse_jsonl
    hf           Hugging Face Daily Papers API        hf.parse_hf_json   (falls back to hf-html)
    hf-html      the Daily Papers page                hf.parse_hf_html
    arxiv:CATS   arXiv announcement feeds             arxiv.parse_arxiv_feed

``fetch_papers`` runs several at once and merges by id; ``parse_input`` reads a saved response.
"""

from __future__ import annotations

from bot.sources.base import ParseResult, Skipped, paper_to_json
from bot.sources.http import Clock, Fetcher, HttpPolicy, SystemClock, make_client
from bot.sources.registry import (
    FetchReport,
    SourceOptions,
    SourceOutcome,
    SourceSpec,
    every_source_failed,
    fetch_papers,
    merge_papers,
    parse_spec,
)
from bot.sources.saved import parse_input, sniff_format

__all__ = [
    "Clock",
    "FetchReport",
    "Fetcher",
    "HttpPolicy",
    "ParseResult",
    "Skipped",
    "SourceOptions",
    "SourceOutcome",
    "SourceSpec",
    "SystemClock",
    "every_source_failed",
    "fetch_papers",
    "make_client",
    "merge_papers",
    "paper_to_json",
    "parse_input",
    "parse_spec",
    "sniff_format",
]
