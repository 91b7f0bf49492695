"""Source specs, fetching several sources at once, merging by id and per-source outcomes."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import httpx
import pytest
from sourcekit import FakeClock, Server, fixture_bytes, html_response, json_response, xml_response

from bot.errors import ConfigError
from bot.models import Paper
from bot.sources import FetchReport, SourceSpec, fetch_papers, merge_papers, parse_spec
from bot.sources.registry import SourceOptions

DAY = date(2024, 1, 16)
HF_API = "huggingface.co/api/daily_papers"
HF_PAGE = "huggingface.co/papers/date/2024-01-16"
ARXIV = "rss.arxiv.org/rss/cs.LG+cs.CL"


def test_specs_are_parsed_in_order_without_duplicates() -> None:
    specs = parse_spec(" hf, arxiv:cs.LG+cs.CL ,sample,file:data/p.jsonl,hf,hf-html")
    assert specs == [
        SourceSpec("hf"),
        SourceSpec("arxiv", categories=("cs.LG", "cs.CL")),
        SourceSpec("sample"),
        SourceSpec("file", path=Path("data/p.jsonl")),
        SourceSpec("hf-html"),
    ]
    assert [str(s) for s in specs] == [
        "hf",
        "arxiv:cs.LG+cs.CL",
        "sample",
        "file:data/p.jsonl",
        "hf-html",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty entry"),
        ("hf,,sample", "empty entry"),
        ("arxiv", "invalid source 'arxiv'"),
        ("arxiv:", "arxiv: needs categories"),
        ("arxiv:cs.LG+not a cat!", "not a cat! is not an arXiv category"),
        ("file:", "file: needs a path"),
        ("huggingface", "use sample, file:PATH, hf, hf-html or arxiv:CAT"),
        ("hf:today", "invalid source 'hf:today'"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text)
    assert message in str(caught.value)


def _outcomes(report: FetchReport) -> dict[str, tuple[str, int]]:
    return {o.source: (o.status, o.count) for o in report.outcomes}


async def fetch(server: Server, clock: FakeClock, spec: str) -> FetchReport:
    async with server.client() as client:
        return await fetch_papers(parse_spec(spec), DAY, client=client, clock=clock)


async def test_two_sources_merge_into_one_record_per_paper(
    server: Server, clock: FakeClock
) -> None:
    server.routes[HF_API] = [json_response(fixture_bytes("hf/daily_papers_2024-01-16.json"))]
    server.routes[ARXIV] = [xml_response(fixture_bytes("arxiv/rss_cs.LG+cs.CL.xml"))]
    report = await fetch(server, clock, "hf,arxiv:cs.LG+cs.CL")
    assert _outcomes(report) == {"hf": ("ok", 4), "arxiv:cs.LG+cs.CL": ("ok", 4)}
    ids = [p.id for p in report.papers]
    assert len(ids) == len(set(ids)) == 7
    lantern = next(p for p in report.papers if p.id == "2401.10001")
    assert lantern.upvotes == 57  # from Hugging Face
    assert lantern.categories == ("cs.LG", "cs.CL")  # from arXiv
    assert lantern.hf_url == "https://huggingface.co/papers/2401.10001"
    assert lantern.source == "hf,arxiv"


async def test_a_failing_source_never_stops_the_others(server: Server, clock: FakeClock) -> None:
    server.routes[HF_API] = [json_response(fixture_bytes("hf/daily_papers_2024-01-16.json"))]
    server.routes[ARXIV] = [httpx.Response(503)]
    report = await fetch(server, clock, "arxiv:cs.LG+cs.CL,hf")
    assert _outcomes(report) == {"arxiv:cs.LG+cs.CL": ("failed", 0), "hf": ("ok", 4)}
    [failed] = report.failed
    assert failed.reason and "gave up after 5 attempts: HTTP 503" in failed.reason
    assert str(failed).startswith("arxiv:cs.LG+cs.CL: failed: gave up")
    assert len(report.papers) == 4 and not report.all_failed


async def test_a_bug_inside_one_source_is_reported_as_its_failure(
    server: Server, clock: FakeClock
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    server.routes[ARXIV] = broken
    server.routes[HF_API] = [json_response(b"[]")]
    report = await fetch(server, clock, "arxiv:cs.LG+cs.CL,hf")
    assert report.outcomes[0].status == "failed"
    assert report.outcomes[0].reason == "unexpected RuntimeError: boom"
    assert report.outcomes[1].status == "empty"


async def test_no_papers_today_is_not_a_failure(server: Server, clock: FakeClock) -> None:
    server.routes[HF_API] = [
        json_response(fixture_bytes("hf/daily_papers_2024-01-13_weekend.json"))
    ]
    server.routes[ARXIV] = [xml_response(fixture_bytes("arxiv/rss_cs.LG_weekend.xml"))]
    report = await fetch(server, clock, "hf,arxiv:cs.LG+cs.CL")
    assert _outcomes(report) == {"hf": ("empty", 0), "arxiv:cs.LG+cs.CL": ("empty", 0)}
    assert report.failed == [] and report.papers == []
    assert str(report.outcomes[0]) == "hf: no papers"


async def test_the_page_stands_in_when_the_api_fails(server: Server, clock: FakeClock) -> None:
    server.routes[HF_API] = [httpx.Response(500)]
    server.routes[HF_PAGE] = [html_response(fixture_bytes("hf/papers_page_2024-01-16.html"))]
    report = await fetch(server, clock, "hf")
    [outcome] = report.outcomes
    assert (outcome.status, outcome.count) == ("ok", 4)
    assert outcome.reason and outcome.reason.startswith("used the Daily Papers page")
    assert {p.source for p in report.papers} == {"hf-html"}


async def test_a_redirect_loop_fails_at_once_and_the_page_stands_in(
    server: Server, clock: FakeClock
) -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": str(request.url)})

    server.routes[HF_API] = loop
    server.routes[HF_PAGE] = [html_response(fixture_bytes("hf/papers_page_2024-01-16.html"))]
    report = await fetch(server, clock, "hf")
    [outcome] = report.outcomes
    assert (outcome.status, outcome.count) == ("ok", 4)
    assert (
        outcome.reason
        and "the API failed: too many redirects from https://huggingface.co/api/daily_papers"
        in outcome.reason
    )
    assert clock.sleeps == []


async def test_api_and_page_both_failing_reports_both(server: Server, clock: FakeClock) -> None:
    server.routes[HF_API] = [json_response(b'{"error": "maintenance"}')]
    server.routes[HF_PAGE] = [html_response(fixture_bytes("hf/papers_page_changed.html"))]
    report = await fetch(server, clock, "hf")
    [outcome] = report.outcomes
    assert outcome.status == "failed" and report.all_failed
    assert outcome.reason and "API error: maintenance" in outcome.reason
    assert 'no element with data-target="DailyPapers"' in outcome.reason
    assert str(outcome).startswith("hf: failed: API: "), "the source is named once"
    assert "source " not in outcome.reason


async def test_replacements_follow_the_option(server: Server, clock: FakeClock) -> None:
    server.routes[ARXIV] = [xml_response(fixture_bytes("arxiv/rss_cs.LG+cs.CL.xml"))]
    async with server.client() as client:
        report = await fetch_papers(
            parse_spec("arxiv:cs.LG+cs.CL"),
            DAY,
            client=client,
            clock=clock,
            options=SourceOptions(include_replacements=True),
        )
    assert report.outcomes[0].count == 6


@pytest.mark.parametrize(
    "written",
    [
        "http://export.arxiv.org/abs/2401.10001v2",
        "arxiv.org/abs/2401.10001",
        "https://arxiv.org/abs/2401.10001/",
        "10.48550/arXiv.2401.10001",
        "https://doi.org/10.48550/arXiv.2401.10001",
        "arXiv: 2401.10001v3",
    ],
)
async def test_a_paper_written_with_another_form_of_its_arxiv_id_is_one_paper(
    tmp_path: Path, server: Server, clock: FakeClock, written: str
) -> None:
    server.routes[HF_API] = [json_response(fixture_bytes("hf/daily_papers_2024-01-16.json"))]
    papers = tmp_path / "papers.jsonl"
    line = {
        "id": written,
        "title": "Lantern",
        "abstract": "Sparse towers.",
        "categories": ["cs.LG"],
    }
    papers.write_text(json.dumps(line) + "\n")
    report = await fetch(server, clock, f"hf,file:{papers}")
    assert [p.id for p in report.papers] == ["2401.10001", "2401.10002", "2401.10003", "2401.10004"]
    assert report.papers[0].categories == ("cs.LG",) and report.papers[0].upvotes == 57


async def test_local_sources_report_bad_lines_with_file_and_line(
    tmp_path: Path, server: Server, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    papers = tmp_path / "papers.jsonl"
    good = {"id": "seed-1", "title": "A title", "abstract": "An abstract."}
    papers.write_text(json.dumps(good) + "\n{broken\n" + json.dumps({"id": "seed-2"}) + "\n")
    report = await fetch(server, clock, f"sample,file:{papers}")
    sample, local = report.outcomes
    assert sample.status == "ok" and sample.count >= 30
    assert (local.status, local.count) == ("ok", 1)
    assert [str(s) for s in local.skipped] == [
        f"{papers}:2: not valid JSON (Expecting property name enclosed in double quotes)",
        f"{papers}:3: id seed-2: missing or empty 'title'",
    ]
    assert f"{papers}:2: not valid JSON" in caplog.text
    assert server.requests == []


async def test_a_missing_file_is_a_failed_source(
    tmp_path: Path, server: Server, clock: FakeClock
) -> None:
    report = await fetch(server, clock, f"file:{tmp_path / 'nope.jsonl'}")
    assert report.outcomes[0].status == "failed"
    assert "cannot read" in (report.outcomes[0].reason or "")


async def test_a_source_that_never_answers_fails_by_its_deadline_and_the_others_go_on(
    tmp_path: Path, server: Server, clock: FakeClock
) -> None:
    """A file on a hung mount, or a FIFO nobody writes, is a failed source, not a fetch that
    never ends (it would hold up every later fetch)."""
    fifo = tmp_path / "papers.fifo"
    os.mkfifo(fifo)
    options = SourceOptions(deadline=0.5)
    try:
        async with server.client() as client:
            report = await fetch_papers(
                parse_spec(f"file:{fifo},sample"), DAY, client=client, clock=clock, options=options
            )
    finally:  # let the reading thread see an empty file and end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    hung, sample = report.outcomes
    assert (hung.status, hung.reason) == (
        "failed", "no answer within 0.5 s (tried again at the next fetch)",
    )  # fmt: skip
    assert sample.status == "ok" and len(report.papers) == sample.count


def test_merge_combines_fields_and_keeps_first_seen_order() -> None:
    a = Paper(
        "1", "Title", "Abstract", upvotes=3, source="hf", hf_url="https://huggingface.co/papers/1"
    )
    b = Paper("1", "", "", authors=("Ada",), categories=("cs.LG",), source="arxiv")
    c = Paper("2", "Other", "Text", categories=("cs.CL",), source="arxiv")
    d = Paper("1", "T", "A", categories=("cs.LG", "stat.ML"), upvotes=5, source="arxiv")
    [one, two] = merge_papers([[a], [b, c], [d]])
    assert (one.id, one.title, one.abstract, one.authors) == ("1", "Title", "Abstract", ("Ada",))
    assert one.categories == ("cs.LG", "stat.ML")
    assert one.upvotes == 5 and one.source == "hf,arxiv"
    assert one.hf_url == "https://huggingface.co/papers/1"
    assert two.id == "2"
