"""Saved responses through the same parsers, and the ``paperbot papers`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sourcekit import FIXTURES, fixture_bytes
from typer.testing import CliRunner

from bot.cli import app
from bot.errors import ConfigError, SourceError
from bot.sources import paper_to_json, parse_input, sniff_format


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("hf/daily_papers_2024-01-16.json", "hf"),
        ("hf/daily_papers_2024-01-13_weekend.json", "hf"),
        ("hf/daily_papers_error.json", "hf"),
        ("hf/papers_page_2024-01-16.html", "hf-html"),
        ("arxiv/rss_cs.LG+cs.CL.xml", "arxiv"),
        ("arxiv/atom_cs.LG.xml", "arxiv"),
        ("arxiv/error_page.html", "hf-html"),
    ],
)
def test_the_format_is_sniffed_from_the_content(name: str, kind: str) -> None:
    assert sniff_format(fixture_bytes(name)) == kind


def test_json_lines_and_a_single_object_are_papers_files() -> None:
    line = b'{"id": "x-1", "title": "T", "abstract": "A"}'
    assert sniff_format(line) == "jsonl"
    assert sniff_format(line + b"\n" + line) == "jsonl"
    assert sniff_format(b'\xef\xbb\xbf  {"dailyPapers": []}') == "hf"


def test_unknown_content_is_refused() -> None:
    with pytest.raises(SourceError, match="cannot tell the format"):
        parse_input(b"id,title,abstract\n1,x,y\n")
    with pytest.raises(SourceError, match="is empty"):
        parse_input(b"  \n")


def test_paths_bytes_and_text_give_the_same_papers() -> None:
    path = FIXTURES / "hf/papers_page_2024-01-16.html"
    from_path = parse_input(path).papers
    assert from_path == parse_input(path.read_bytes()).papers
    assert from_path == parse_input(path.read_text(encoding="utf-8")).papers
    assert len(from_path) == 4


def test_a_hint_chooses_the_parser_but_never_against_the_content() -> None:
    feed = fixture_bytes("arxiv/rss_cs.LG+cs.CL.xml")
    assert len(parse_input(feed, "arxiv:cs.LG").papers) == 4
    page = fixture_bytes("hf/papers_page_2024-01-16.html")
    assert len(parse_input(page, "hf").papers) == 4  # API and page hold the same list
    with pytest.raises(SourceError, match="looks like arxiv content, not hf"):
        parse_input(feed, "hf")
    with pytest.raises(SourceError, match="looks like hf content, not arxiv"):
        parse_input(fixture_bytes("hf/daily_papers_2024-01-16.json"), "arxiv")
    with pytest.raises(ConfigError, match="cannot parse saved input as 'semantic'"):
        parse_input(feed, "semantic")


def test_jsonl_output_reads_back_unchanged(tmp_path: Path) -> None:
    papers = parse_input(FIXTURES / "hf/daily_papers_2024-01-16.json").papers
    saved = tmp_path / "papers.jsonl"
    saved.write_text("".join(json.dumps(paper_to_json(p)) + "\n" for p in papers))
    assert parse_input(saved).papers == papers


def test_paper_json_has_the_contract_fields_first() -> None:
    paper = parse_input(FIXTURES / "hf/daily_papers_2024-01-16.json").papers[0]
    data = paper_to_json(paper)
    assert list(data)[:10] == [
        "id", "title", "abstract", "authors", "url", "pdf_url",
        "published", "categories", "upvotes", "source",
    ]  # fmt: skip
    assert data["published"] == "2024-01-15T18:59:12+00:00"
    assert data["hf_url"] == "https://huggingface.co/papers/2401.10001"
    assert "ai_summary" in data and "keywords" in data


runner = CliRunner()


@pytest.fixture(autouse=True)
def _quiet_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("PAPERBOT_SOURCES", "PAPERBOT_ARXIV_INCLUDE_REPLACEMENTS"):
        monkeypatch.delenv(name, raising=False)


def test_papers_input_prints_one_json_paper_per_line() -> None:
    result = runner.invoke(app, ["papers", "--input", str(FIXTURES / "arxiv/rss_cs.LG+cs.CL.xml")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["id"] for p in lines] == ["2401.10001", "2401.10010", "2401.09877", "hep-th/9901001"]
    assert lines[0]["authors"] == ["Mira Okonkwo", "Tobias Lindqvist", "Hana Sato"]
    assert "4 papers, 1 skipped" in result.stderr


def test_papers_input_follows_the_replacements_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERBOT_ARXIV_INCLUDE_REPLACEMENTS", "true")
    result = runner.invoke(app, ["papers", "--input", str(FIXTURES / "arxiv/rss_cs.LG+cs.CL.xml")])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 6


def test_papers_table_shows_hostile_titles_as_plain_text(tmp_path: Path) -> None:
    saved = tmp_path / "p.jsonl"
    saved.write_text(
        json.dumps({"id": "x-1", "title": "[bold red]Loud[/] <b>T</b>", "abstract": "A"})
    )
    result = runner.invoke(app, ["papers", "--input", str(saved), "--format", "table"])
    assert result.exit_code == 0, result.output
    assert "[bold red]Loud[/] T" in result.stdout
    assert "<b>" not in result.stdout


def test_papers_input_with_a_broken_file_is_one_clear_error() -> None:
    result = runner.invoke(app, ["papers", "--input", str(FIXTURES / "arxiv/rss_truncated.xml")])
    assert result.exit_code == 1
    assert "Error: source arxiv: the feed is malformed XML" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (fixture_bytes("hf/daily_papers_2024-01-16.json")[:900], "the response is not valid JSON"),
        (
            fixture_bytes("hf/daily_papers_2024-01-16.json").replace(b"sixty-four", b"\xad"),
            "",
        ),
    ],
)
def test_a_saved_api_list_cut_short_or_with_stray_bytes_is_read_as_the_api(
    tmp_path: Path, body: bytes, message: str
) -> None:
    saved = tmp_path / "daily.json"
    saved.write_bytes(body)
    assert sniff_format(body) == "hf"
    result = runner.invoke(app, ["papers", "--input", str(saved)])
    if message:
        assert result.exit_code == 1 and f"Error: source hf: {message}" in result.stderr
    else:
        assert result.exit_code == 0 and len(result.stdout.splitlines()) == 4


def test_papers_input_missing_file_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["papers", "--input", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_papers_from_the_sample_source_without_network() -> None:
    result = runner.invoke(app, ["papers", "--source", "sample"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) >= 30
    assert "sample: " in result.stderr


def test_papers_with_a_bad_spec_or_format_exits_with_an_error() -> None:
    bad_spec = runner.invoke(app, ["papers", "--source", "arxiv:"])
    assert bad_spec.exit_code == 2 and "needs categories" in bad_spec.stderr
    bad_format = runner.invoke(app, ["papers", "--source", "sample", "--format", "xml"])
    assert bad_format.exit_code == 2 and "'xml' is not one of" in bad_format.stderr


def test_a_failed_source_makes_papers_exit_non_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["papers", "--source", f"sample,file:{tmp_path / 'gone.jsonl'}"])
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) >= 30  # what did arrive is still printed
    assert f"file:{tmp_path / 'gone.jsonl'}: failed: cannot read" in result.stderr
    table = ["--format", "table"]
    some = runner.invoke(
        app, ["papers", "--source", f"sample,file:{tmp_path / 'gone.jsonl'}", *table]
    )
    assert some.exit_code == 1 and "sample" in some.stdout, "the papers that arrived, in a table"


def test_papers_prints_no_empty_table_when_every_source_failed(tmp_path: Path) -> None:
    """Nothing arrived: the failures are the whole answer, not a table of 0 papers above them."""
    gone = f"file:{tmp_path / 'gone.jsonl'},file:{tmp_path / 'lost.jsonl'}"
    for fmt in ("table", "jsonl"):
        result = runner.invoke(app, ["papers", "--source", gone, "--format", fmt])
        assert result.exit_code == 1
        assert result.stdout == "", result.stdout
        assert f"file:{tmp_path / 'gone.jsonl'}: failed: cannot read" in result.stderr
        assert f"file:{tmp_path / 'lost.jsonl'}: failed: cannot read" in result.stderr


def test_papers_file_fields_of_the_wrong_type_are_warned_about_and_the_paper_kept(
    tmp_path: Path,
) -> None:
    saved = tmp_path / "p.jsonl"
    lines = [
        {"id": "x-1", "title": "T", "abstract": "A", "authors": "Single Author", "upvotes": "many"},
        {"id": "x-2", "title": "T", "abstract": "A", "authors": ["Ada", 7], "published": "soon"},
        {"id": "x-3", "title": "T", "abstract": "A", "url": "", "upvotes": None, "categories": []},
    ]
    saved.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = runner.invoke(app, ["papers", "--input", str(saved)])
    assert result.exit_code == 0, result.output
    one, two, three = (json.loads(line) for line in result.stdout.splitlines())
    assert (one["authors"], one["upvotes"]) == (["Single Author"], None)
    assert (two["authors"], two["published"]) == (["Ada"], None)
    assert (three["url"], three["upvotes"], three["categories"]) == (None, None, [])
    assert f"{saved}: 3 papers, 0 skipped, 4 field warnings" in result.stderr
    warned = [line.split(": ", 1)[1] for line in result.stderr.splitlines() if "WARNING" in line]
    assert warned == [
        f"source file: {saved}:1: authors: a string, not a list; read as a list of one",
        f'source file: {saved}:1: upvotes: expected a whole number of 0 or more, got "many"; '
        "left out",
        f"source file: {saved}:2: authors: left out 1 entry that is not a string (7)",
        f'source file: {saved}:2: published: expected an ISO 8601 date, got "soon"; left out',
    ], "null, empty and well-typed values are no warning"
