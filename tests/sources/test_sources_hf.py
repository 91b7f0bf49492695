"""Hugging Face Daily Papers: the JSON API and the page, from recorded responses."""

from __future__ import annotations

import html
import json
from datetime import UTC, date, datetime

import httpx
import pytest
from sourcekit import Server, fixture_bytes, html_response, json_response

from bot.errors import SourceError
from bot.render_views import links
from bot.sources import clean, hf

DAY = date(2024, 1, 16)


def test_a_normal_day_keeps_counts_links_and_clean_text() -> None:
    result = hf.parse_hf_json(fixture_bytes("hf/daily_papers_2024-01-16.json"))
    assert [p.id for p in result.papers] == ["2401.10001", "2401.10002", "2401.10003", "2401.10004"]
    assert result.skipped == []
    lantern = result.papers[0]
    assert lantern.title == "Lantern: Routing Tokens Through Sparse Expert Towers at Scale"
    assert "\n" not in lantern.abstract and "  " not in lantern.abstract
    assert lantern.authors == ("Mira Okonkwo", "Tobias Lindqvist", "Hana Sato")
    assert (lantern.upvotes, lantern.comments) == (57, 4)
    assert lantern.url == "https://arxiv.org/abs/2401.10001"
    assert lantern.pdf_url == "https://arxiv.org/pdf/2401.10001"
    assert lantern.hf_url == "https://huggingface.co/papers/2401.10001"
    assert lantern.code_url == "https://github.com/example-lab/lantern"
    assert lantern.project_url == "https://lantern.example.org"
    assert lantern.ai_summary and lantern.ai_summary.startswith("Lantern routes")
    assert lantern.keywords == ("mixture of experts", "sparse routing", "expert towers")
    assert lantern.published == datetime(2024, 1, 15, 18, 59, 12, tzinfo=UTC)
    assert lantern.source == "hf"
    assert result.papers[1].code_url is None


def test_a_weekend_is_an_empty_day_not_an_error() -> None:
    result = hf.parse_hf_json(fixture_bytes("hf/daily_papers_2024-01-13_weekend.json"))
    assert (result.papers, result.skipped, result.total) == ([], [], 0)


def test_hostile_items_are_cleaned_or_skipped_with_reasons() -> None:
    result = hf.parse_hf_json(fixture_bytes("hf/daily_papers_hostile.json"))
    by_id = {p.id: p for p in result.papers}
    assert list(by_id) == ["2401.20001", "2401.20002", "2401.20007"]
    first = by_id["2401.20001"]
    assert first.title == "Bold Claims & Careful Results for n<k"
    assert "<" not in first.abstract and "javascript" not in first.abstract
    assert first.authors == ("Zed Quorra", "Yara Kell")
    assert first.code_url is None and first.project_url is None
    assert len(by_id["2401.20002"].title) <= 400
    assert len(by_id["2401.20007"].abstract) <= 6000
    assert by_id["2401.20007"].upvotes is None
    reasons = [str(s) for s in result.skipped]
    assert reasons == [
        "item 3: duplicate id 2401.20001",
        "item 4: 2401.20004: missing title",
        "item 5: missing or invalid paper id 'not an id <x>'",
        "item 6: expected an object, got str",
    ]


@pytest.mark.parametrize(
    ("repo", "stored"),
    [
        ("https://github.com/example-lab/lantern", "https://github.com/example-lab/lantern"),
        ("https://github.com/o'brien/lantern", None),
        ("https://github.com/o&#39;brien/lantern", None),
        ("https://github.com/example-lab/lantern`", None),
        ("https://github.com/example-lab/lan\x01tern", "https://github.com/example-lab/lantern"),
    ],
)
def test_a_code_link_is_kept_exactly_when_the_email_shows_it(repo: str, stored: str | None) -> None:
    """What a source stores of a link is what the email shows of it: a link the email would
    drop is dropped as it is fetched, so that nothing is kept to vanish when it is shown."""
    item = {"paper": {"id": "2401.10001", "title": "Lantern", "summary": "Routes tokens."}}
    item["paper"]["githubRepo"] = repo
    (paper,) = hf.parse_hf_json(json.dumps([item])).papers
    assert paper.code_url == stored
    assert [link.url for link in links(paper) if link.label == "Code"] == [stored] * bool(stored)


def test_skipped_items_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    hf.parse_hf_json(fixture_bytes("hf/daily_papers_hostile.json"))
    assert "skipped item 6: expected an object, got str" in caplog.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>Bad gateway</body></html>", "not valid JSON"),
        (b'[{"paper": {"id": "2401.1', "not valid JSON"),
        (b'{"error": "Invalid date"}', "API error: Invalid date"),
        (b'{"papers": []}', "expected a JSON list of daily papers, got an object (papers)"),
        (b'"just text"', "expected a JSON list of daily papers, got str"),
        (b'[{"paper": {"title": "no id"}}, {"nothing": 1}]', "none of the 2 items could be used"),
    ],
)
def test_unusable_api_responses_raise_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(SourceError, match="source hf: ") as caught:
        hf.parse_hf_json(body)
    assert message in str(caught.value)


def test_a_stray_byte_that_is_not_utf8_costs_no_paper_and_is_named() -> None:
    """A Latin-1 byte in one abstract (a server re-encoding one field) keeps every paper."""
    recorded = fixture_bytes("hf/daily_papers_2024-01-16.json")
    body = recorded.replace(b"sixty-four", b"sixty\xadfour", 1)
    result = hf.parse_hf_json(body)
    assert [p.id for p in result.papers] == [p.id for p in hf.parse_hf_json(recorded).papers]
    assert "sixty\ufffdfour" in result.papers[0].abstract
    assert [str(w) for w in result.warnings] == [
        "item 1 (2401.10001): abstract: bytes that are not UTF-8 (shown as \ufffd)"
    ]


def test_the_page_yields_the_same_papers_as_the_api() -> None:
    page = hf.parse_hf_html(fixture_bytes("hf/papers_page_2024-01-16.html"))
    api = hf.parse_hf_json(fixture_bytes("hf/daily_papers_2024-01-16.json"))
    assert [(p.id, p.title, p.upvotes) for p in page.papers] == [
        (p.id, p.title, p.upvotes) for p in api.papers
    ]
    assert {p.source for p in page.papers} == {"hf-html"}


def test_an_empty_page_is_an_empty_day() -> None:
    assert hf.parse_hf_html(fixture_bytes("hf/papers_page_2024-01-13_weekend.html")).papers == []


def _page(props: str) -> bytes:
    element = f'<div data-target="DailyPapers" data-props="{props}"></div>'
    return f"<html><body>{element}</body></html>".encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (fixture_bytes("hf/papers_page_changed.html"), 'no element with data-target="DailyPapers"'),
        (b"", 'no element with data-target="DailyPapers"'),
        (b'<div data-target="DailyPapers"></div>', "has no data-props attribute"),
        (_page("{not json"), "DailyPapers data-props is not valid JSON"),
        (_page(html.escape(json.dumps([1, 2]))), "data-props is not a JSON object"),
        (
            _page(html.escape(json.dumps({"date": "2024-01-16", "papers": {}}))),
            "no 'dailyPapers' list (keys: date, papers)",
        ),
    ],
)
def test_a_changed_page_raises_saying_what_is_missing(body: bytes, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        hf.parse_hf_html(body)
    assert message in str(caught.value)


def _paged(request: httpx.Request) -> httpx.Response:
    items = json.loads(fixture_bytes("hf/daily_papers_2024-01-16.json"))
    limit, page = int(request.url.params["limit"]), int(request.url.params["p"])
    return json_response(json.dumps(items[page * limit : (page + 1) * limit]).encode())


async def test_the_api_is_read_page_by_page(server: Server) -> None:
    server.routes["huggingface.co/api/daily_papers"] = _paged
    result = await hf.fetch_hf(server.fetcher(), DAY, page_size=3)
    assert [p.id for p in result.papers] == ["2401.10001", "2401.10002", "2401.10003", "2401.10004"]
    assert [dict(r.url.params) for r in server.requests] == [
        {"date": "2024-01-16", "limit": "3", "p": "0"},
        {"date": "2024-01-16", "limit": "3", "p": "1"},
        {"date": "2024-01-16", "limit": "3", "p": "2"},
    ]


async def test_a_server_capping_the_limit_does_not_cut_the_list(server: Server) -> None:
    def capped(request: httpx.Request) -> httpx.Response:
        items = json.loads(fixture_bytes("hf/daily_papers_2024-01-16.json"))
        page = int(request.url.params["p"])  # serves 2 a page whatever limit says
        return json_response(json.dumps(items[page * 2 : page * 2 + 2]).encode())

    server.routes["huggingface.co/api/daily_papers"] = capped
    result = await hf.fetch_hf(server.fetcher(), DAY, page_size=50)
    assert len(result.papers) == 4
    assert [r.url.params["p"] for r in server.requests] == ["0", "1", "2"]


async def test_a_weekend_takes_one_request(server: Server) -> None:
    server.routes["huggingface.co/api/daily_papers"] = [json_response(b"[]")]
    result = await hf.fetch_hf(server.fetcher(), date(2024, 1, 13))
    assert result.papers == [] and len(server.requests) == 1


async def test_an_api_that_ignores_the_page_parameter_does_not_loop(server: Server) -> None:
    body = fixture_bytes("hf/daily_papers_2024-01-16.json")
    server.routes["huggingface.co/api/daily_papers"] = [json_response(body)]
    result = await hf.fetch_hf(server.fetcher(), DAY, page_size=4)
    assert len(result.papers) == 4
    assert len(server.requests) == 2


async def test_the_page_is_fetched_by_date(server: Server) -> None:
    body = fixture_bytes("hf/papers_page_2024-01-16.html")
    server.routes["huggingface.co/papers/date/2024-01-16"] = [html_response(body)]
    result = await hf.fetch_hf_html(server.fetcher(), DAY)
    assert len(result.papers) == 4


async def test_an_html_answer_from_the_api_is_a_content_type_error(server: Server) -> None:
    body = fixture_bytes("hf/papers_page_2024-01-16.html")
    server.routes["huggingface.co/api/daily_papers"] = [html_response(body)]
    with pytest.raises(SourceError, match="expected json content, got 'text/html"):
        await hf.fetch_hf(server.fetcher(), DAY)


def test_a_renamed_or_nested_list_of_items_is_still_found() -> None:
    items = json.loads(fixture_bytes("hf/daily_papers_2024-01-16.json"))
    nested = html.escape(json.dumps({"feed": {"papersOfTheDay": items[:2]}, "date": "2024-01-16"}))
    assert [p.id for p in hf.parse_hf_html(_page(nested)).papers] == ["2401.10001", "2401.10002"]


def test_keywords_are_capped_at_their_own_length() -> None:
    item = {
        "paper": {
            "id": "2401.10009",
            "title": "Short Title",
            "summary": "An abstract.",
            "authors": [{"name": "Ada Lovelace"}],
            "ai_keywords": ["routing " * 15, "experts"],
        }
    }
    (paper,) = hf.parse_hf_json(json.dumps([item]).encode()).papers
    assert len(paper.keywords[0]) <= clean.MAX_KEYWORD < len("routing " * 15)
    assert paper.keywords[1] == "experts"
