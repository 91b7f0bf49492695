"""Text, link and id cleaning shared by every source."""

from __future__ import annotations

import json

import pytest

from bot import ids
from bot.sources import clean
from bot.sources.arxiv import split_creators
from bot.sources.jsonl import parse_jsonl


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2401.04088", "2401.04088"),
        ("2401.04088v2", "2401.04088"),
        ("oai:arXiv.org:2401.04088v1", "2401.04088"),
        ("arXiv:0801.1234", "0801.1234"),
        ("https://arxiv.org/abs/2401.04088v3", "2401.04088"),
        ("https://arxiv.org/pdf/2401.04088.pdf", "2401.04088"),
        ("hep-th/9901001v1", "hep-th/9901001"),
        ("math.CO/9901016", "math.CO/9901016"),
        ("seed-001", None),
        ("2401.04088v2 extra", None),
        ("", None),
        (None, None),
    ],
)
def test_arxiv_id_is_normalised_without_version(raw: object, expected: str | None) -> None:
    assert ids.arxiv_id(raw) == expected


def test_paper_id_accepts_safe_tokens_and_refuses_others() -> None:
    assert ids.paper_id("seed-001") == "seed-001"
    assert ids.paper_id("2401.04088v5") == "2401.04088"
    assert ids.paper_id("bad id <script>") is None
    assert ids.paper_id("x" * 500) is None
    assert ids.paper_id(["2401.04088"]) is None


@pytest.mark.parametrize(
    "url",
    ["https://github.com/a/b", "http://example.org/x?y=1#z", "HTTPS://Example.org/"],
)
def test_safe_url_keeps_http_links(url: str) -> None:
    assert clean.safe_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox",
        "mailto:a@example.org",
        "//evil.example.org/x",
        "/relative/path",
        "http://",
        'https://example.org/"onmouseover="x',
        "https://example.org/" + "a" * 3000,
        42,
        None,
    ],
)
def test_safe_url_drops_everything_else(url: object) -> None:
    assert clean.safe_url(url) is None


def test_titles_lose_markup_and_hard_line_breaks_but_keep_math() -> None:
    raw = "Sparse\n  Experts <b>at</b> Scale:\tH<sub>2</sub>O &amp; bounds for $n<k$ and x > 2"
    assert clean.clean_title(raw) == "Sparse Experts at Scale: H2O & bounds for $n<k$ and x > 2"


def test_script_bodies_are_removed_even_when_escaped_or_unclosed() -> None:
    assert clean.clean_title("A<script>alert('x')</script> Title") == "A Title"
    assert clean.clean_title("&lt;script&gt;alert(1)&lt;/script&gt;Title") == "Title"
    assert clean.clean_title("Title<script>alert(1)") == "Title"
    assert clean.clean_title("Title <!-- hidden --> end") == "Title end"


def test_control_and_zero_width_characters_are_removed() -> None:
    assert clean.clean_title("Zero\u200bwidth\x00 and\u2028line") == "Zerowidth and line"


def test_bidirectional_overrides_cannot_reverse_what_follows() -> None:
    """An override or isolate left open would show the rest of the line backwards; the marks
    that steer the order of what is around them (Arabic letter mark too) go with them."""
    raw = "Safe \u202eesrever\u202c and \u2067isolated\u2069 \u202aend\u202c \u061cmarked\u200f"
    assert clean.clean_abstract(raw) == "Safe esrever and isolated end marked"


def test_absurdly_long_text_is_capped_at_a_word_with_a_mark() -> None:
    capped = clean.clean_title("word " * 1000)
    assert len(capped) <= clean.MAX_TITLE
    assert capped.endswith("word…")
    assert len(clean.clean_abstract("x" * 50_000)) == clean.MAX_ABSTRACT


def test_non_strings_clean_to_empty() -> None:
    assert clean.clean_title(None) == ""
    assert clean.clean_title(12) == ""
    assert clean.clean_names("Ada Lovelace") == ()
    assert clean.clean_names(["Ada", "", None, "Ada", "<i>Bo</i>"]) == ("Ada", "Bo")


def test_papers_file_keywords_are_capped_at_their_own_length() -> None:
    line = {"id": "2401.10009", "title": "T", "abstract": "A.", "keywords": ["routing " * 15]}
    (paper,) = parse_jsonl(json.dumps(line)).papers
    assert len(paper.keywords[0]) <= clean.MAX_KEYWORD < len("routing " * 15)


def test_counts_refuse_negatives_bools_and_strings() -> None:
    assert clean.as_count(7) == 7
    assert [clean.as_count(v) for v in (-1, True, "7", 1.5, None)] == [None] * 5


@pytest.mark.parametrize(
    ("creator", "names"),
    [
        ("Ada One, Bo Two, Cy Three", ("Ada One", "Bo Two", "Cy Three")),
        ("Ada One, Bo Two and Cy Three", ("Ada One", "Bo Two", "Cy Three")),
        ("Ada One, Bo Two, and Cy Three", ("Ada One", "Bo Two", "Cy Three")),
        ("Ada One and Bo Two", ("Ada One", "Bo Two")),
        ("Tom Hughes, Jr., Ada One", ("Tom Hughes, Jr.", "Ada One")),
        ("Ada One (Lab A, City), Bo Two (Lab B)", ("Ada One", "Bo Two")),
        ('<a href="https://arxiv.org/a/one_a_1">Ada One</a>, Bo Two', ("Ada One", "Bo Two")),
        ("Sandra Anderson", ("Sandra Anderson",)),
        ("", ()),
    ],
)
def test_dc_creator_is_split_into_names(creator: str, names: tuple[str, ...]) -> None:
    assert split_creators(creator) == names
