"""`match`, `explain`, `preview` and `fetch` through the real entry point."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

import bot
from bot.cli import app
from bot.cli import inspect as inspect_cli
from bot.cli.app import make_deps, make_mailer, not_in_future, read_profiles, settings
from bot.delivery_jobs import Outcome
from bot.errors import UsageError
from bot.pipeline import WOULD_SKIP, Deps, SendReport
from bot.settings import Settings
from bot.store import Store
from bot.sweep import sweep
from tests.conftest import stored_summaries

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
        and "ada@example.org (3 picks)" in result.output
        and "grace@example.org (1 pick)" in result.output
        and "alan@example.org (0 picks)" in result.output
    )
    ranked = runner.invoke(app, [*args, "--all"])
    assert ranked.exit_code == 0 and "(8 papers ranked)" in ranked.output


def test_match_says_when_the_papers_file_holds_no_paper(
    profiles_file: Path, tmp_path: Path
) -> None:
    """The table says so, as ``fetch`` does; the JSON keeps its shape, every list empty."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    args = ["match", "--profiles", str(profiles_file), "--papers", str(empty)]
    table = runner.invoke(app, [*args, "--format", "table"])
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith(f"{empty}: empty, 0 papers\n"), table.stdout
    assert "alan@example.org (0 picks)" in table.stdout
    data = runner.invoke(app, args)
    assert data.exit_code == 0 and "empty" not in data.output
    assert [s["matches"] for s in json.loads(data.stdout)["subscribers"]] == [[], [], []]


def test_match_and_explain_use_liked_papers_and_name_the_unseen_ones(
    env: dict[str, str], profiles_file: Path, papers_file: Path
) -> None:
    """``match`` and ``explain --papers`` find liked papers in the papers file, as ``send``
    finds them in the store; a liked id paperbot has not seen is said to count for nothing."""
    profiles_file.write_text(
        profiles_file.read_text().replace(
            '      keywords: ["quantum error correction"]',
            '      keywords: ["quantum error correction"]\n      like: ["2611.10001", "2401.04088"]',
        )
    )
    args = ["match", "--profiles", str(profiles_file), "--papers", str(papers_file), "--all"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    alan = {m["paper_id"]: m for m in json.loads(result.stdout)["subscribers"][2]["matches"]}
    assert alan["2611.10005"]["score"] > 0
    liked = "like: similar to 2611.10001 (Router Z-Loss Revisited: Stable Training of Sparse…)"
    assert alan["2611.10005"]["reasons"] == [liked]
    unseen = "alan@example.org: like: 2401.04088 counts for nothing yet: paperbot has not seen"
    assert unseen in result.stderr
    why = runner.invoke(
        app, ["explain", "alan@example.org", "2611.10005", "--papers", str(papers_file)]
    )
    assert f"because {liked}" in " ".join(why.output.split()), why.output
    assert "  like: 2401.04088 counts for nothing yet" in why.output


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


def test_explain_says_when_the_paper_was_sent_already(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["fetch", "--date", "2026-11-25"]).exit_code == 0
    before = runner.invoke(app, ["explain", "ada@example.org", "2611.10001"])
    assert "2611.10001: picked (" in before.output, before.output
    sent = runner.invoke(app, ["send", "--date", "2026-11-25", "--to", "ada@example.org"])
    assert sent.exit_code == 0, sent.output
    after = runner.invoke(app, ["explain", "ada@example.org", "2611.10001"])
    assert "2611.10001: picked, but already sent to ada@example.org (" in after.output
    assert "\n  sent in the digest for 2026-11-25 on " in after.output


def test_explain_against_a_papers_file_says_which_email_carried_the_paper(
    env: dict[str, str], papers_file: Path
) -> None:
    """The ledger knows what reached the subscriber, whichever papers the verdict is read
    among; without a database none is made, and the verdict stands alone."""
    args = ["explain", "ada@example.org", "2611.10001", "--papers", str(papers_file)]
    database = Path(env["PAPERBOT_DATABASE_URL"].removeprefix("sqlite:///"))
    before = runner.invoke(app, args)
    assert before.exit_code == 0, before.output
    assert before.stdout.startswith("2611.10001: picked (") and "sent in" not in before.stdout
    assert not database.exists(), "explaining against a file makes no database"
    sent = runner.invoke(app, ["send", "--date", "2026-11-25", "--to", "ada@example.org"])
    assert sent.exit_code == 0, sent.output
    after = runner.invoke(app, args)
    assert after.exit_code == 0, after.output
    assert "2611.10001: picked, but already sent to ada@example.org (" in after.output
    assert "\n  sent in the digest for 2026-11-25 on " in after.output
    assert runner.invoke(app, ["unsubscribe", "ada@example.org"]).exit_code == 0
    gone = runner.invoke(app, args).output.splitlines()
    assert "  ada@example.org is suppressed (unsubscribed): gets no mail" in gone


def test_explain_against_a_papers_file_with_a_broken_database_still_explains(
    env: dict[str, str], papers_file: Path
) -> None:
    Path(env["PAPERBOT_DATABASE_URL"].removeprefix("sqlite:///")).write_text("not a database")
    args = ["explain", "ada@example.org", "2611.10001", "--papers", str(papers_file)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2611.10001: picked (")
    assert "Note: whether it reached ada@example.org is not known: " in result.stderr
    assert "file is not a database" in result.stderr


ALAN_ALERTS = (
    '      keywords: ["quantum error correction"]\n    alerts:\n'
    '      - keywords: ["sparse mixture of experts"]\n      - authors: ["L. Okafor"]'
)
"""Alert rules for alan, whose interests match no paper of the day: both fire on 2611.10001."""


def sweep_at(moment: datetime) -> None:
    """One sweep of the worker at ``moment``, with the profiles and database of the settings."""
    config = settings()
    deps = replace(make_deps(config, mailer=make_mailer(config)), clock=lambda: moment)
    subscribers = read_profiles(config.profiles).subscribers
    ids = deps.store.sync_subscribers(subscribers).ids
    asyncio.run(sweep(deps, {ids[s.email.lower()]: s for s in subscribers}, moment))
    deps.store.close()


def test_explain_names_the_alert_rules_that_fire_on_the_paper(
    env: dict[str, str], profiles_file: Path, papers_file: Path
) -> None:
    text = profiles_file.read_text()
    profiles_file.write_text(
        text.replace('      keywords: ["quantum error correction"]', ALAN_ALERTS)
    )
    assert runner.invoke(app, ["fetch", "--date", "2026-11-25"]).exit_code == 0
    stored = runner.invoke(app, ["explain", "alan@example.org", "2611.10001"])
    in_file = ["explain", "alan@example.org", "2611.10001", "--papers", str(papers_file)]
    for result in (stored, runner.invoke(app, in_file)):
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].startswith("2611.10001: below threshold (score 0.000"), lines
        assert lines[1:3] == [
            '  fires alert "sparse mixture of experts" (title: sparse mixture of experts)',
            "  fires alert for author Lena Okafor (as L. Okafor)",
        ]
    quiet = runner.invoke(app, ["explain", "alan@example.org", "2611.10002"]).output
    assert "fires alert" not in quiet


def explain_after_a_sweep(profiles_file: Path, alan: str) -> Result:
    """``explain`` of Lena Okafor's paper for Alan, whose keywords became ``alan``, once the day
    is fetched and a sweep has run."""
    text = profiles_file.read_text()
    profiles_file.write_text(text.replace('      keywords: ["quantum error correction"]', alan))
    assert runner.invoke(app, ["fetch", "--date", "2026-11-25"]).exit_code == 0
    sweep_at(datetime(2026, 11, 25, 5, 0, tzinfo=UTC))
    return runner.invoke(app, ["explain", "alan@example.org", "2611.10001"])


def test_explain_says_which_alert_rules_an_exclude_stops_on_the_paper(
    env: dict[str, str], profiles_file: Path
) -> None:
    """A paper holding a phrase the subscriber excludes fires none of their alerts: explain
    names the rules it would fire and the exclude that vetoes it, and a sweep sends no alert."""
    result = explain_after_a_sweep(
        profiles_file, '      exclude: ["router z-loss"]\n' + ALAN_ALERTS
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:3] == [
        '  would fire alert "sparse mixture of experts" (title: sparse mixture of experts), but '
        'exclude "router z-loss" vetoes the paper',
        '  would fire alert for author Lena Okafor (as L. Okafor), but exclude "router z-loss" '
        "vetoes the paper",
    ]
    assert "sent in an alert" not in result.stdout


def test_explain_after_an_alert_says_when_it_went_and_why(
    env: dict[str, str], profiles_file: Path, papers_file: Path
) -> None:
    result = explain_after_a_sweep(profiles_file, ALAN_ALERTS)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(
        "2611.10001: below threshold, but already sent to alan@example.org (score 0.000"
    ), lines
    assert "  fires alert for author Lena Okafor (as L. Okafor)" in lines
    assert "  sent in an alert on 2026-11-25 05:00 UTC" in lines
    in_file = ["explain", "alan@example.org", "2611.10001", "--papers", str(papers_file)]
    assert "  sent in an alert on 2026-11-25 05:00 UTC" in runner.invoke(app, in_file).output
    assert runner.invoke(app, ["unsubscribe", "alan@example.org"]).exit_code == 0
    after = runner.invoke(app, ["explain", "alan@example.org", "2611.10001"]).output
    assert "  alan@example.org is suppressed (unsubscribed): gets no mail" in after.splitlines()


def test_explain_finds_a_stored_paper_by_its_title(env: dict[str, str], papers_file: Path) -> None:
    assert runner.invoke(app, ["fetch", "--date", "2026-11-25"]).exit_code == 0
    by_id = runner.invoke(app, ["explain", "grace@example.org", "2611.10004"]).output
    for title in (
        "heat diffusion on citation graphs for venue recommendation",  # the title, any case
        "Heat Diffusion",  # the start of one title
        "citation graphs",  # a part of one title
    ):
        found = runner.invoke(app, ["explain", "grace@example.org", title])
        assert (found.exit_code, found.output) == (0, by_id), title
    in_file = ["explain", "ada@example.org", "router z-loss", "--papers", str(papers_file)]
    assert "2611.10001: picked" in runner.invoke(app, in_file).output
    several = runner.invoke(app, ["explain", "grace@example.org", "diffusion"])
    assert several.exit_code == 1
    assert "(2611.10003)" in several.output and "(2611.10004)" in several.output
    missing = runner.invoke(app, ["explain", "ada@example.org", "Load-Aware Token Routing"])
    assert missing.exit_code == 1
    assert 'no stored paper has the title "Load-Aware Token Routing"' in missing.output
    close = runner.invoke(app, ["explain", "ada@example.org", "Expert Routing with Capacity"])
    assert close.exit_code == 0 and close.output.startswith("2611.10002: ")
    typo = runner.invoke(app, ["explain", "ada@example.org", "Expert Rooting with Capacity"])
    assert typo.exit_code == 1
    assert '; close titles: "Expert Routing with Capacity Constraints' in typo.output


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


def test_a_fetch_ended_by_an_unexpected_error_is_recorded_as_one(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("bot.cli.inspect.fetch_and_store", broken)
    result = runner.invoke(app, ["fetch", "--date", "2026-11-25"])
    assert result.exit_code != 0
    store = Store(env["PAPERBOT_DATABASE_URL"])
    (run,) = store.recent_runs()
    assert (run.command, run.status, run.summary) == ("fetch", "error", {"day": "2026-11-25"})
    store.close()


def test_fetch_and_status_name_each_paper_a_source_left_out(
    env: dict[str, str], tmp_path: Path
) -> None:
    day_file = Path("day.jsonl")  # in tmp_path, the working directory
    good = (Path(__file__).parent / "fixtures" / "papers.jsonl").read_text().splitlines()[:2]
    bad = '{"id": "2611.00042v2", "title": "Sparse Lanterns", "abstract": ""}'
    day_file.write_text("\n".join([good[0], bad, good[1]]) + "\n")
    result = runner.invoke(app, ["fetch", "--source", f"file:{day_file}", "--date", "2026-11-25"])
    assert result.exit_code == 0, result.output
    assert "ok, 2 papers, 1 skipped" in result.output
    assert f"skipped {day_file}:2: id 2611.00042: missing or empty 'abstract'" in result.output
    status = " ".join(runner.invoke(app, ["status"]).output.split())  # the note may wrap
    assert (
        "run 1 file:day.jsonl: 1 skipped: day.jsonl:2: id 2611.00042: missing or empty 'abstract'"
        in status
    )
    store = Store(env["PAPERBOT_DATABASE_URL"])
    (run,) = store.recent_runs()
    (outcome,) = run.summary["sources"]
    assert outcome["skipped_items"] == [f"{day_file}:2: id 2611.00042: missing or empty 'abstract'"]
    store.close()


@pytest.mark.parametrize("command", [["fetch"], ["papers"], ["send", "--dry-run"]])
@pytest.mark.parametrize("given", ["", " "])
def test_an_empty_source_is_refused_not_read_as_the_configured_one(
    env: dict[str, str], command: list[str], given: str
) -> None:
    """``--source "$SPEC"`` with SPEC unset must not fetch PAPERBOT_SOURCES instead."""
    result = runner.invoke(app, [*command, "--source", given])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--source': empty" in result.output
    assert "2611." not in result.output, "no paper was read"
    assert not Path(env["PAPERBOT_DATABASE_URL"].removeprefix("sqlite:///")).exists()


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


def one_line(output: str) -> str:
    """Output with rich's error box and line wrapping taken out."""
    return " ".join(output.replace("│", " ").split())


def test_preview_out_in_a_missing_folder_is_a_usage_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "x.html"
    result = runner.invoke(app, ["preview", "ada@example.org", "--out", str(target)])
    assert result.exit_code == 2, result.output
    assert one_line(result.output) == (
        f"Error: cannot write --out {target}: there is no folder {target.parent}"
    )
    assert not target.parent.exists()
    folder = runner.invoke(app, ["preview", "ada@example.org", "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "it is a directory" in folder.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert not store.has_papers_for(date(2026, 11, 25)), "checked before any fetch"
    store.close()


def test_preview_says_when_no_email_would_be_sent(env: dict[str, str], tmp_path: Path) -> None:
    """Alan's interests match nothing and he wants no "nothing today" note."""
    result = runner.invoke(app, ["preview", "alan@example.org", "--date", "2026-11-25"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "No email would be sent: nothing matched and send_empty is false."
    )
    assert not list(tmp_path.glob("preview-*.html"))


def test_preview_renders_the_note_for_send_empty(
    env: dict[str, str], profiles_file: Path, tmp_path: Path
) -> None:
    text = profiles_file.read_text().replace(
        "    name: Alan Turing\n", "    name: Alan Turing\n    send_empty: true\n"
    )
    profiles_file.write_text(text)
    out = tmp_path / "alan.html"
    args = ["preview", "alan@example.org", "--date", "2026-11-25", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Subject: Nothing matched your interests" in result.output
    assert result.stdout.splitlines()[1] == 'A "nothing matched" note'
    assert "Nothing matched" in out.read_text() or "None of the papers" in out.read_text()


def test_preview_says_when_the_date_is_not_due_and_still_renders(
    env: dict[str, str], profiles_file: Path, tmp_path: Path
) -> None:
    """2026-11-25 is a Wednesday."""
    weekly = "    name: Ada Lovelace\n    frequency: weekly:mon\n"
    profiles_file.write_text(profiles_file.read_text().replace("    name: Ada Lovelace\n", weekly))
    out = tmp_path / "ada.html"
    args = ["preview", "ada@example.org", "--date", "2026-11-25", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "Note: ada@example.org is not due on Wednesday 2026-11-25: weekly on Mondays; "
        "a digest goes out that day only with send --to or --date."
    )
    assert "Subject: 3 papers for the week to Wed 25 Nov" in result.stdout and out.is_file()
    due = runner.invoke(app, ["preview", "ada@example.org", "--date", "2026-11-23"])
    assert due.exit_code == 0 and "not due" not in due.output, due.output


def test_preview_of_a_digest_already_sent_or_an_address_suppressed(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["send", "--date", "2026-11-25"]).exit_code == 0
    sent = runner.invoke(app, ["preview", "ada@example.org", "--date", "2026-11-25"])
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == "No email would be sent: already sent for 2026-11-25."
    assert runner.invoke(app, ["unsubscribe", "grace@example.org"]).exit_code == 0
    gone = runner.invoke(app, ["preview", "grace@example.org", "--date", "2026-11-24"])
    assert gone.stdout.strip() == "No email would be sent: address is suppressed."
    sent_now = runner.invoke(app, ["send", "--to", "grace@example.org", "--date", "2026-11-24"])
    assert "skipped  grace@example.org address is suppressed" in sent_now.stdout.splitlines()


def test_preview_of_a_date_the_subscriber_has_not_reached_says_what_send_does(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """At 03:00 UTC on the 25th it is still the 24th in New York: a send leaves grace out, and
    her preview renders no email dated a day she has not reached."""
    made = make_deps

    def early(config: Settings) -> Deps:
        return replace(made(config), clock=lambda: datetime(2026, 11, 25, 3, tzinfo=UTC))

    monkeypatch.setattr(inspect_cli, "make_deps", early)
    result = runner.invoke(app, ["preview", "grace@example.org", "--date", "2026-11-25"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "No email would be sent: it is not yet 2026-11-25 where they are (America/New_York)."
    )
    assert not list(tmp_path.glob("preview-*.html"))
    ada = runner.invoke(app, ["preview", "ada@example.org", "--date", "2026-11-25"])
    assert ada.exit_code == 0 and "Subject: 3 papers for Wed 25 Nov" in ada.stdout, ada.output
    before = runner.invoke(app, ["preview", "grace@example.org", "--date", "2026-11-24"])
    assert before.exit_code == 0 and "Subject: " in before.stdout, before.output


@pytest.mark.parametrize("send_empty", [True, False])
def test_preview_of_a_profile_without_interests_says_what_send_does(
    env: dict[str, str], profiles_file: Path, tmp_path: Path, send_empty: bool
) -> None:
    """Such a profile gets no digest, whether or not it asks for "nothing matched" notes."""
    alan = '      keywords: ["quantum error correction"]\n'
    empty = f"    send_empty: {str(send_empty).lower()}\n    interests: {{}}\n"
    text = profiles_file.read_text().replace("    interests:\n" + alan, empty)
    profiles_file.write_text(text)
    args = ["--to", "alan@example.org", "--date", "2026-11-25"]
    sent = runner.invoke(app, ["send", *args, "--dry-run"])
    assert "skipped  alan@example.org no interests in the profile" in sent.stdout.splitlines()
    result = runner.invoke(app, ["preview", "alan@example.org", "--date", "2026-11-25"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "No email would be sent: no interests in the profile."
    assert not list(tmp_path.glob("preview-*.html"))


@pytest.mark.parametrize(
    ("max_papers", "said"),
    [(5, "3 papers"), (1, "1 paper, 2 more matches"), (2, "2 papers, 1 more match")],
)
def test_preview_says_how_many_papers_leaving_out_a_count_of_none(
    env: dict[str, str], profiles_file: Path, tmp_path: Path, max_papers: int, said: str
) -> None:
    text = profiles_file.read_text().replace("max_papers: 5", f"max_papers: {max_papers}")
    profiles_file.write_text(text)
    args = ["preview", "ada@example.org", "--date", "2026-11-25", "--out", str(tmp_path / "a.html")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == said


@pytest.mark.parametrize(
    ("now", "latest"),
    [
        (datetime(2026, 11, 27, 3, 56, tzinfo=UTC), date(2026, 11, 27)),  # Kiritimati: 17:56
        (datetime(2026, 11, 27, 10, 0, tzinfo=UTC), date(2026, 11, 28)),  # Kiritimati: 00:00
    ],
)
def test_a_date_is_refused_until_the_first_time_zone_reaches_it(
    now: datetime, latest: date
) -> None:
    assert not_in_future(latest, now) == latest
    with pytest.raises(UsageError, match="is in the future"):
        not_in_future(latest + timedelta(days=1), now)


def test_a_dry_run_counts_what_it_would_send_whatever_notes_its_lines_carry() -> None:
    note = " (not due on Saturday 2026-11-28: weekdays only; included because of --date)"
    report = SendReport()
    report.outcomes += [
        Outcome("a@example.org", "dry-run", 1, f"would send 1 paper{note}", date(2026, 11, 28)),
        Outcome("b@example.org", "dry-run", 0, f"{WOULD_SKIP}{note}", date(2026, 11, 28)),
    ]
    assert report.would_send == 1


def test_preview_fetch_and_papers_refuse_a_future_date_as_send_does(env: dict[str, str]) -> None:
    later = (date.today() + timedelta(days=3)).isoformat()
    message = f"Error: --date {later} is in the future: no time zone has reached it yet"
    for command in (["send"], ["preview", "ada@example.org"], ["fetch"], ["papers"]):
        result = runner.invoke(app, [*command, "--date", later])
        assert (result.exit_code, result.output.strip()) == (2, message), command
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.recent_runs() == []
    assert not store.papers_between(date.today(), date.max), "nothing fetched or stored"
    store.close()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-13-01", "invalid date '2026-13-01': month must be in 1..12 (use YYYY-MM-DD)"),
        ("2026-02-30", "invalid date '2026-02-30': day is out of range for month (use YYYY-MM-DD)"),
        ("25/11/2026", "invalid date '25/11/2026' (use YYYY-MM-DD)"),
    ],
)
def test_a_bad_date_says_what_is_wrong(env: dict[str, str], value: str, problem: str) -> None:
    for command in (["send"], ["preview", "ada@example.org"], ["fetch"], ["papers"]):
        result = runner.invoke(app, [*command, "--date", value])
        assert result.exit_code == 2, result.output
        assert problem in one_line(result.output)
        assert "%Y" not in result.output and "Value error" not in result.output


def test_a_bad_since_says_which_times_it_takes(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["unsuppress", "--since", "yesterday"])
    assert result.exit_code == 2, result.output
    assert "invalid time 'yesterday' (use YYYY-MM-DD or YYYY-MM-DDTHH:MM in UTC, e.g. " in one_line(
        result.output
    )
    store = Store(env["PAPERBOT_DATABASE_URL"])
    store.suppress(
        "ada@example.org", "550 5.1.1 no such user", datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    )
    for value in ("2026-11-28", "2026-11-27T13:00", "2026-11-27 12:31+00:00"):
        result = runner.invoke(app, ["unsuppress", "--since", value])
        assert "no suppressed address matches" in result.output, (value, result.output)
    result = runner.invoke(app, ["unsuppress", "--since", "2026-11-27 13:00+02:00"])  # 11:00 UTC
    assert result.exit_code == 0 and "ada@example.org" in result.output, result.output
    assert "ada@example.org" not in store.suppressed()


def test_help_shows_placeholders_only_for_values(env: dict[str, str]) -> None:
    for command in (["send"], ["preview"], ["match"], ["fetch"], ["papers"], []):
        long_form = runner.invoke(app, [*command, "--help"], terminal_width=120)
        short_form = runner.invoke(app, [*command, "-h"], terminal_width=120)
        assert long_form.exit_code == short_form.exit_code == 0, command
        assert long_form.output == short_form.output
        assert "<bool>" not in long_form.output and "%Y" not in long_form.output
    send_help = runner.invoke(app, ["send", "--help"], terminal_width=120).output
    assert re.search(r"--date\s+YYYY-MM-DD", send_help)
    assert re.search(r"--to\s+EMAIL", send_help)
    assert re.search(r"--dry-run\s+Match and render only", send_help)


@pytest.mark.parametrize(
    ("command", "default"),
    [(["send"], "today in each subscriber's time zone"),
     (["preview", "ada@example.org"], "today in the subscriber's time zone"),
     (["fetch"], "today in UTC"), (["papers"], "today in UTC")],
)  # fmt: skip
def test_the_help_of_date_says_which_today_is_meant(command: list[str], default: str) -> None:
    """Digests are dated in each subscriber's time zone (as the contract says of ``send``),
    the lists a fetch asks for in UTC."""
    shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert f"The date (default: {default})." in shown


def test_the_command_list_gives_each_command_one_line_of_help() -> None:
    """The list of commands shows each command's first paragraph as written: a line break in it
    shows as a break in the middle of the sentence."""
    groups: list[Any] = [typer.main.get_command(app)]
    while groups:
        group = groups.pop()
        for name, command in group.commands.items():
            first = (command.help or "").split("\n\n")[0]
            assert first and "\n" not in first, (name, first)
            groups += [command] if hasattr(command, "commands") else []


def test_arguments_are_named_in_upper_case() -> None:
    usages = {
        ("preview",): "{EMAIL}",
        ("explain",): "{EMAIL} {PAPER_ID}",
        ("unsubscribe",): "{EMAIL|TOKEN}",
        ("unsuppress",): "[EMAIL]...",
        ("profiles", "check"): "[FILE]",
    }
    for command, arguments in usages.items():
        usage = runner.invoke(app, [*command, "--help"], terminal_width=120).output
        line = next(line for line in usage.splitlines() if "Usage:" in line)
        assert line.rstrip().endswith(f"[OPTIONS] {arguments}"), line


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"paperbot {bot.__version__}\n")


def test_explain_ignores_an_arxiv_version_suffix(env: dict[str, str], papers_file: Path) -> None:
    assert runner.invoke(app, ["fetch", "--date", "2026-11-25"]).exit_code == 0
    plain = runner.invoke(app, ["explain", "grace@example.org", "2611.10004"])
    for form in ("2611.10004v2", "arXiv:2611.10004v1", "https://arxiv.org/abs/2611.10004v3"):
        versioned = runner.invoke(app, ["explain", "grace@example.org", form])
        assert versioned.exit_code == 0, versioned.output
        assert versioned.output == plain.output
    in_file = ["explain", "ada@example.org", "2611.10001v2", "--papers", str(papers_file)]
    assert "2611.10001: picked" in runner.invoke(app, in_file).output


def test_fetch_says_each_sources_outcome_and_records_it_as_before(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The lines ``fetch`` prints and the run it records: ``status`` and older runs read the
    record, so its form is fixed."""
    day_file = Path("day.jsonl")  # in tmp_path, the working directory
    good = (Path(__file__).parent / "fixtures" / "papers.jsonl").read_text().splitlines()[0]
    bad = [f'{{"id": "2611.000{n:02}", "title": "T", "abstract": ""}}' for n in range(11)]
    day_file.write_text("\n".join([good, *bad]) + "\n")
    spec = f"file:{day_file},file:gone.jsonl"
    result = runner.invoke(app, ["fetch", "--source", spec, "--date", "2026-11-25"])
    assert result.exit_code == 1, result.output
    missing = "cannot read gone.jsonl: No such file or directory"
    why = "missing or empty 'abstract'"
    items = [f"day.jsonl:{n + 2}: id 2611.000{n:02}: {why}" for n in range(10)]
    assert result.stdout.splitlines() == [
        "file:day.jsonl: ok, 1 papers, 11 skipped",
        *(f"  skipped {item}" for item in items),
        "  (the log names every item skipped)",
        f"file:gone.jsonl: failed, 0 papers ({missing})",
        "2026-11-25: 1 papers, 1 new, 0 updated",
    ]
    (summary,) = stored_summaries(env["PAPERBOT_DATABASE_URL"])
    day = '"source": "file:day.jsonl", "status": "ok", "count": 1, "reason": null, "skipped": 11'
    gone = f'"source": "file:gone.jsonl", "status": "failed", "count": 0, "reason": "{missing}"'
    listed = ", ".join(json.dumps(item) for item in items)
    assert summary == (
        f'{{"day": "2026-11-25", "sources": [{{{day}, "skipped_items": [{listed}]}}, {{{gone}}}]}}'
    )
