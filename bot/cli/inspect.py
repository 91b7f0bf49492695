"""Commands that look and send nothing: fetch, papers, match, explain, preview."""

from __future__ import annotations

import asyncio
import json
import webbrowser
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from bot import matching, sources
from bot.cli.app import (
    DateOption,
    OneDigestDateOption,
    SourceOption,
    app,
    err,
    find_subscriber,
    handle_errors,
    make_deps,
    make_fetch,
    not_due,
    not_in_future,
    out,
    read_profiles,
    settings,
)  # fmt: skip
from bot.errors import BotError, UsageError
from bot.lookup import explain_listed, explain_stored, not_sent, with_ledger
from bot.lookup import preview as pipeline_preview
from bot.message import html_part
from bot.models import Digest, Paper, Subscriber
from bot.outbox import safe_name
from bot.pipeline import digest_day, fetch_and_store, nothing_to_send
from bot.settings import Settings
from bot.sources.jsonl import read_papers_file
from bot.store import DatabaseFailure, db_reason, missing_database
from bot.store.runs import ONE_SHOT_PATIENCE, Patience
from bot.text import plural


class MatchFormat(StrEnum):
    """Output formats of ``match``."""

    json = "json"
    table = "table"


class PapersFormat(StrEnum):
    """Output formats of ``papers``."""

    jsonl = "jsonl"
    table = "table"


@app.command()
@handle_errors
def fetch(day: DateOption = None, source: SourceOption = None) -> None:
    """Fetch the day's papers and store them (running it again changes only counts)."""
    config = settings()
    deps = make_deps(config, source)
    when = not_in_future(day) or datetime.now(UTC).date()
    with deps.store.run("fetch", patience=Patience(ONE_SHOT_PATIENCE)) as run:
        run.summary["day"] = when
        summary = asyncio.run(fetch_and_store(deps, when))
        run.status = "failed" if summary.report.failed else "ok"
        run.summary["sources"] = [o.summary() for o in summary.report.outcomes]
    for o in summary.report.outcomes:
        reason = f" ({o.reason})" if o.reason else ""
        skipped = f", {len(o.skipped)} skipped" if o.skipped else ""
        out.print(f"{o.source}: {o.status}, {o.count} papers{skipped}{reason}", markup=False)
        for item in o.skipped_shown:
            out.print(f"  skipped {item}", markup=False)
        if len(o.skipped) > len(o.skipped_shown):
            out.print("  (the log names every item skipped)", markup=False)
    out.print(f"{when}: {summary.fetched} papers, {summary.new} new, {summary.updated} updated")
    if summary.report.failed:
        raise typer.Exit(1)


def _papers_table(found: list[Paper]) -> Table:
    table = Table(title=f"{len(found)} papers", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("title", ratio=3, overflow="fold")
    table.add_column("authors", ratio=2, overflow="fold")
    for column in ("categories", "upvotes", "source"):
        table.add_column(column, overflow="fold")
    for p in found:
        authors = ", ".join(p.authors[:3]) + (" et al." if len(p.authors) > 3 else "")
        cells = (p.id, p.title, authors, " ".join(p.categories), str(p.upvotes or ""), p.source)
        table.add_row(*(Text(cell) for cell in cells))  # Text: titles are never rich markup
    return table


@app.command()
@handle_errors
def papers(
    day: DateOption = None,
    source: SourceOption = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", metavar="FILE", help="Parse a saved response instead of fetching."),
    ] = None,
    fmt: Annotated[
        PapersFormat, typer.Option("--format", help="jsonl or table")
    ] = PapersFormat.jsonl,
) -> None:
    """Print the normalised papers a source yields, or that a saved response parses to."""
    config = settings()
    failed = nothing = False
    if input_file is not None:
        result = sources.parse_input(
            input_file, source, include_replacements=config.arxiv_include_replacements
        )
        found = result.papers
        warned = f", {len(result.warnings)} field warnings" if result.warnings else ""
        notes = [f"{input_file}: {len(found)} papers, {len(result.skipped)} skipped{warned}"]
    else:
        fetch_day = make_fetch(config, source or config.sources)
        when = not_in_future(day) or datetime.now(UTC).date()
        report = asyncio.run(fetch_day(when))
        found, notes, failed = report.papers, [str(o) for o in report.outcomes], bool(report.failed)
        nothing = report.all_failed  # no table of 0 papers: the failures say it all
    if fmt == PapersFormat.table and not nothing:
        out.print(_papers_table(found))
    else:
        for paper in found:
            print(json.dumps(sources.paper_to_json(paper), ensure_ascii=False))
    for note in notes:
        err.print(note, markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command()
@handle_errors
def match(
    profiles: Annotated[
        Path, typer.Option("--profiles", metavar="FILE", help="Profiles YAML file")
    ],
    papers: Annotated[
        Path, typer.Option("--papers", metavar="FILE", help="Papers JSON Lines file")
    ],
    all_papers: Annotated[bool, typer.Option("--all", help="Rank every paper.")] = False,
    fmt: Annotated[MatchFormat, typer.Option("--format", help="json or table")] = MatchFormat.json,
) -> None:
    """Score papers for every subscriber in a profiles file."""
    subs = read_profiles(profiles).subscribers
    found = read_papers_file(papers).papers
    liked = {p.id: p for p in found}
    chosen = matching.select(subs, found, corpus=found, liked=liked)
    for sub in subs:
        for pid in matching.unseen_likes(sub, liked):
            err.print(f"{sub.email}: {matching.UNSEEN_LIKE.format(pid)}", markup=False)
    result: list[dict[str, Any]] = []
    for sub in subs:
        picked = chosen[sub.email]
        matches = picked.ranked if all_papers else picked.picked
        rows = [
            {"paper_id": m.paper.id, "score": round(m.score, 4), "reasons": list(m.reasons)}
            for m in matches
        ]
        result.append({"email": sub.email, "matches": rows, "more": len(picked.more)})
    if fmt == MatchFormat.json:
        print(json.dumps({"subscribers": result}, indent=2, ensure_ascii=False))
        return
    if not found:  # every subscriber's empty table would otherwise read as nothing matching
        out.print(f"{papers}: empty, 0 papers", markup=False, highlight=False, soft_wrap=True)
    titles = {p.id: p.title for p in found}
    for entry in result:
        count = len(entry["matches"])
        said = plural(count, "paper") + " ranked" if all_papers else plural(count, "pick")
        title = f"{entry['email']} ({said})"
        table = Table(title=Text(title), title_justify="left")
        for column in ("score", "paper", "title", "why"):
            table.add_column(column, overflow="fold")
        for m in entry["matches"]:
            cells = (m["paper_id"], titles[m["paper_id"]], "; ".join(m["reasons"]))
            table.add_row(f"{m['score']:.2f}", *(Text(c) for c in cells))
        out.print(table)


@app.command()
@handle_errors
def explain(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The subscriber's email address")],
    paper_id: Annotated[
        str,
        typer.Argument(
            metavar="PAPER_ID",
            help="The paper's id, e.g. 2401.04088 (a version suffix is ignored), or its title",
        ),
    ],
    papers: Annotated[
        Path | None,
        typer.Option("--papers", metavar="FILE", help="Explain against a Papers file instead"),
    ] = None,
) -> None:
    """Why a paper was or was not picked for a subscriber."""
    config = settings()
    subscriber = find_subscriber(read_profiles(config.profiles, configured=True), email)
    if papers is None:
        verdict = explain_stored(make_deps(config), subscriber, paper_id)
    else:
        verdict = explain_listed(subscriber, paper_id, read_papers_file(papers).papers, str(papers))
        verdict = _with_ledger(config, subscriber, verdict)
    for line in verdict.lines():
        out.print(line, markup=False, soft_wrap=True)
    if verdict.snippet:
        out.print(f"  snippet: {verdict.snippet}", markup=False, soft_wrap=True)


def _with_ledger(
    config: Settings, subscriber: Subscriber, verdict: matching.Explanation
) -> matching.Explanation:
    """A verdict on a paper of a papers file, with what the ledger says of it (see
    ``with_ledger``) when there is a database to ask; without one (none made yet, or it cannot
    be read, as a note on stderr says) the verdict alone."""
    if missing_database(config.database_url) is not None:
        return verdict
    try:
        return with_ledger(make_deps(config), subscriber, verdict)
    except (BotError, DatabaseFailure) as exc:
        reason = db_reason(exc) if isinstance(exc, DatabaseFailure) else str(exc)
        note = f"Note: whether it reached {subscriber.email} is not known: {reason}"
        err.print(note, markup=False, highlight=False, soft_wrap=True)
        return verdict


@app.command()
@handle_errors
def preview(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The subscriber's email address")],
    day: OneDigestDateOption = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="Where to write the HTML (its folder must exist)"
        ),
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
) -> None:
    """Render exactly what a subscriber would get, without sending or touching the ledger."""
    config = settings()
    subscriber = find_subscriber(read_profiles(config.profiles, configured=True), email)
    not_in_future(day)
    if out_file is not None:
        writable_file(out_file, "--out")
    deps = make_deps(config)
    when = day or digest_day(subscriber, datetime.now(UTC))
    note = not_due(subscriber, when)
    if note:
        then = "a digest goes out that day only with send --to or --date"
        err.print(f"Note: {subscriber.email} is {note}; {then}.", markup=False, soft_wrap=True)
    reason = not_sent(deps, subscriber, when)
    if reason is None:
        digest, message = asyncio.run(pipeline_preview(deps, subscriber, when))
        reason = nothing_to_send(digest)
    if reason is not None:
        out.print(f"No email would be sent: {reason}.", markup=False, soft_wrap=True)
        return
    target = out_file or Path(f"preview-{safe_name(subscriber.email)}-{when}.html")
    try:
        target.write_text(html_part(message.data) or "", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    out.print(f"Subject: {message.subject}", markup=False, soft_wrap=True)
    out.print(holds(digest), markup=False)
    out.print(f"Preview: {target}", markup=False, soft_wrap=True)
    if open_browser:
        webbrowser.open(target.resolve().as_uri())


def holds(digest: Digest) -> str:
    """What a previewed digest holds: ``5 papers, 12 more matches``, ``1 paper`` (no count of
    none), or the note sent when nothing matched."""
    if not digest.matches:
        return 'A "nothing matched" note'
    more = digest.more_count
    listed = plural(len(digest.matches), "paper")
    return f"{listed}, {plural(more, 'more match', 'more matches')}" if more else listed


def writable_file(path: Path, option: str) -> None:
    """A clear usage error, before any work, when ``path`` cannot be written."""
    if path.is_dir():
        raise UsageError(f"cannot write {option} {path}: it is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {option} {path}: there is no folder {folder}")
