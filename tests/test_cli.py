"""`match`, `explain`, `preview` and `fetch` through the real entry point."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app
from bot.store import Store

runner = CliRunner()


def test_match_json_contract(profiles_file: Path, papers_file: Path) -> None:
    result = runner.invoke(
        app, ["match", "--profiles", str(profiles_file), "--papers", str(papers_file)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    emails = [s["email"] for s in data["subscribers"]]
    assert emails == ["ada@example.org", "grace@example.org", "alan@example.org"]
    ada = data["subscribers"][0]["matches"]
    assert {"paper_id", "score", "reasons"} <= set(ada[0])
    assert [m["score"] for m in ada] == sorted((m["score"] for m in ada), reverse=True)
    assert "2611.10001" in {m["paper_id"] for m in ada}
    assert "2611.10005" not in {m["paper_id"] for m in ada}, "the survey is excluded"
    assert any(r.startswith("keyword: ") for m in ada for r in m["reasons"])
    assert data["subscribers"][2]["matches"] == []


def test_match_all_ranks_every_paper(profiles_file: Path, papers_file: Path) -> None:
    args = ["match", "--profiles", str(profiles_file), "--papers", str(papers_file), "--all"]
    data = json.loads(runner.invoke(app, args).stdout)
    assert all(len(s["matches"]) == 8 for s in data["subscribers"])


def test_match_is_deterministic(profiles_file: Path, papers_file: Path) -> None:
    args = ["match", "--profiles", str(profiles_file), "--papers", str(papers_file), "--all"]
    assert runner.invoke(app, args).stdout == runner.invoke(app, args).stdout


def test_match_table(profiles_file: Path, papers_file: Path) -> None:
    args = [
        "match",
        "--profiles",
        str(profiles_file),
        "--papers",
        str(papers_file),
        "--format",
        "table",
    ]
    result = runner.invoke(app, args)
    assert (
        result.exit_code == 0
        and "ada@example.org" in result.output
        and "Router Z-Loss" in result.output
    )


def test_explain_against_a_papers_file(env: dict[str, str], papers_file: Path) -> None:
    picked = runner.invoke(
        app, ["explain", "ada@example.org", "2611.10001", "--papers", str(papers_file)]
    )
    assert picked.exit_code == 0, picked.output
    assert "2611.10001: picked" in picked.output and "because keyword:" in picked.output
    vetoed = runner.invoke(
        app, ["explain", "ada@example.org", "2611.10005", "--papers", str(papers_file)]
    )
    assert "vetoed" in vetoed.output and "survey" in vetoed.output
    missing = runner.invoke(
        app, ["explain", "ada@example.org", "9999.00000", "--papers", str(papers_file)]
    )
    assert missing.exit_code == 1 and "not in" in missing.output


def test_explain_stored_paper(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["fetch", "--date", "2026-11-25"]).exit_code == 0
    result = runner.invoke(app, ["explain", "grace@example.org", "2611.10004"])
    assert result.exit_code == 0, result.output
    assert "2611.10004: below threshold" in result.output
    unknown = runner.invoke(app, ["explain", "grace@example.org", "2611.99999"])
    assert unknown.exit_code == 1 and "not stored" in unknown.output


def test_fetch_is_idempotent_and_recorded(env: dict[str, str]) -> None:
    first = runner.invoke(app, ["fetch", "--date", "2026-11-25"])
    assert first.exit_code == 0, first.output
    assert "8 papers, 8 new, 0 updated" in first.output
    second = runner.invoke(app, ["fetch", "--date", "2026-11-25"])
    assert "8 papers, 0 new, 0 updated" in second.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    day = date(2026, 11, 25)
    assert len(store.papers_between(day, day)) == 8
    assert [r.command for r in store.recent_runs()] == ["fetch", "fetch"]
    store.close()


def test_fetch_failure_exits_1_and_says_which_source(env: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["fetch", "--source", f"file:{tmp_path / 'gone.jsonl'}"])
    assert result.exit_code == 1
    assert "failed" in result.output and "gone.jsonl" in result.output


def test_preview_renders_without_touching_the_ledger(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "ada.html"
    result = runner.invoke(
        app, ["preview", "ada@example.org", "--date", "2026-11-25", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!") and "Router Z-Loss" in html and "<script" not in html
    assert "Subject: " in result.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.ledger.counts() == [] and store.sent_paper_ids([1, 2, 3]) == {}
    store.close()
    assert not Path(env["PAPERBOT_OUTBOX"]).exists()


def test_preview_unknown_subscriber(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["preview", "nobody@example.org"])
    assert result.exit_code == 1 and "not a subscriber" in result.output
