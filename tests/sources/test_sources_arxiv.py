"""arXiv announcement feeds (RSS 2.0 and Atom), from recorded responses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sourcekit import Server, fixture_bytes, html_response, xml_response

from bot.errors import SourceError
from bot.sources import arxiv

RSS = "arxiv/rss_cs.LG+cs.CL.xml"


def test_rss_new_and_cross_lists_are_kept_once_and_replacements_left_out() -> None:
    result = arxiv.parse_arxiv_feed(fixture_bytes(RSS))
    assert [p.id for p in result.papers] == [
        "2401.10001",
        "2401.10010",
        "2401.09877",
        "hep-th/9901001",
    ]
    assert [str(s) for s in result.skipped] == ["entry 4: duplicate id 2401.09877"]


def test_replacements_are_included_when_asked() -> None:
    result = arxiv.parse_arxiv_feed(fixture_bytes(RSS), include_replacements=True)
    ids = [p.id for p in result.papers]
    assert "2312.05555" in ids and "2311.04444" in ids
    assert len(ids) == 6


def test_rss_fields_are_normalised() -> None:
    papers = {p.id: p for p in arxiv.parse_arxiv_feed(fixture_bytes(RSS)).papers}
    lantern = papers["2401.10001"]
    assert lantern.abstract.startswith("We present Lantern, a sparse mixture-of-experts")
    assert "Announce Type" not in lantern.abstract and "\n" not in lantern.abstract
    assert lantern.authors == ("Mira Okonkwo", "Tobias Lindqvist", "Hana Sato")
    assert lantern.categories == ("cs.LG", "cs.CL")
    assert lantern.url == "https://arxiv.org/abs/2401.10001"
    assert lantern.pdf_url == "https://arxiv.org/pdf/2401.10001"
    assert lantern.published == datetime(2024, 1, 16, 5, 0, tzinfo=UTC)
    assert lantern.source == "arxiv" and lantern.upvotes is None
    assert papers["2401.10010"].title.endswith("When $n<k$")
    assert papers["2401.10010"].authors == ("Jean-Luc Marchetti", "Wei Chen", "Sofia Alvarez-Ruiz")
    cross = papers["2401.09877"]
    assert cross.authors == ("Aoife Brennan", "Tomas Hughes, Jr.", "Priya Raman", "Daniel König")
    assert cross.categories == ("eess.AS", "cs.CL", "cs.SD")
    old = papers["hep-th/9901001"]
    assert old.title == "Lattice Sieving Revisited"
    assert old.url == "https://arxiv.org/abs/hep-th/9901001"


def test_affiliations_in_parentheses_are_not_names() -> None:
    result = arxiv.parse_arxiv_feed(fixture_bytes(RSS), include_replacements=True)
    tokeniser = next(p for p in result.papers if p.id == "2311.04444")
    assert tokeniser.authors == ("Nadia Petrova", "Omar Haddad")


def test_atom_feed_parses_the_same_way() -> None:
    result = arxiv.parse_arxiv_feed(fixture_bytes("arxiv/atom_cs.LG.xml"))
    assert [p.id for p in result.papers] == ["2401.10002", "2401.10003"]
    quiet = result.papers[0]
    assert quiet.title == "Quiet Gradients: Stable Low-Precision Training with Delayed Scaling"
    assert quiet.abstract.startswith("Training in eight-bit")
    assert quiet.authors == ("Ravi Menon", "Elodie Garnier")
    assert quiet.categories == ("cs.LG", "cs.AR")


def test_a_day_without_announcements_is_empty_not_an_error() -> None:
    result = arxiv.parse_arxiv_feed(fixture_bytes("arxiv/rss_cs.LG_weekend.xml"))
    assert (result.papers, result.skipped) == ([], [])


def test_hostile_entries_are_cleaned_or_skipped() -> None:
    result = arxiv.parse_arxiv_feed(fixture_bytes("arxiv/rss_hostile.xml"))
    [paper] = result.papers
    assert paper.title == "Escaping Matters in Feeds"
    assert paper.abstract == "An abstract wrapped in markup & entities."
    assert paper.url == "https://arxiv.org/abs/2401.30001"  # never the javascript: link
    assert paper.categories == ("cs.CR",)
    assert [str(s) for s in result.skipped] == [
        "entry 2: no arXiv id in 'tag:example.org,2024:1'",
        "entry 3: 2401.30003: missing title",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("arxiv/rss_truncated.xml", "the feed is malformed XML"),
        ("arxiv/error_page.html", "not an RSS or Atom feed"),
    ],
)
def test_broken_feeds_raise_a_clear_error(name: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        arxiv.parse_arxiv_feed(fixture_bytes(name))


def test_a_feed_where_nothing_is_usable_is_an_error() -> None:
    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
        b"<item><title>No id</title><description>Abstract: text</description></item>"
        b"</channel></rss>"
    )
    with pytest.raises(SourceError, match="none of the 1 items could be used"):
        arxiv.parse_arxiv_feed(feed)


async def test_the_feed_url_joins_categories_with_plus(server: Server) -> None:
    server.routes["rss.arxiv.org/rss/cs.LG+cs.CL"] = [xml_response(fixture_bytes(RSS))]
    result = await arxiv.fetch_arxiv(server.fetcher(), ["cs.LG", "cs.CL"])
    assert len(result.papers) == 4
    assert str(server.requests[0].url) == "https://rss.arxiv.org/rss/cs.LG+cs.CL"


async def test_an_html_answer_is_refused_by_content_type(server: Server) -> None:
    server.routes["rss.arxiv.org/rss/cs.LG"] = [
        html_response(fixture_bytes("arxiv/error_page.html"))
    ]
    with pytest.raises(SourceError, match="expected xml or rss or atom content"):
        await arxiv.fetch_arxiv(server.fetcher(), ["cs.LG"])


def test_the_legacy_rdf_feed_still_parses() -> None:
    feed = fixture_bytes("arxiv/rdf_legacy_cs.CL.xml")
    [paper] = arxiv.parse_arxiv_feed(feed).papers
    assert paper.id == "2311.07001"
    assert paper.title == "Rhyme-Aware Decoding for Lyric Translation"
    assert paper.authors == ("Eszter Varga", "Rui Mendes")
    assert paper.abstract.startswith("Translating song lyrics must keep rhyme")
    with_updates = arxiv.parse_arxiv_feed(feed, include_replacements=True)
    assert [p.id for p in with_updates.papers] == ["2311.07001", "2309.01111"]
