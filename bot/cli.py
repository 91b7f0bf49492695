"""The command line: the only place that reads argv and the environment, and calls asyncio.run.

Every command turns a BotError into one clear line on stderr and the error's exit code; a
traceback is only ever shown for a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import sys
import webbrowser
from collections.abc import Callable, Iterator
from enum import StrEnum
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text

from bot import admin_cli, matching, sources
from bot.errors import BotError, ConfigError, ProfileError
from bot.logs import setup_logging
from bot.mailer import Mailer, OutboxMailer, SmtpMailer
from bot.models import Paper, Subscriber
from bot.pipeline import (
    Deps,
    Fetched,
    Outcome,
    SendOptions,
    SendReport,
    digest_day,
    explain_stored,
    fetch_and_store,
    send_digests,
)
from bot.pipeline import preview as pipeline_preview
from bot.profiles import Profiles, json_schema_text, parse_profiles
from bot.render import Renderer
from bot.scheduler import run_worker
from bot.sources.jsonl import read_papers_file
from bot.settings import Settings, load_settings
from bot.store import Store
from bot.web import UnsubscribeServer
from bot.worker import ProfilesFile, Worker

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="paperbot: research papers picked for you, by email.",
)
profiles_app = typer.Typer(no_args_is_help=True, help="Check and inspect the profiles file.")
app.add_typer(profiles_app, name="profiles")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DateOption = Annotated[
    datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="YYYY-MM-DD")
]
class MatchFormat(StrEnum):
    """Output formats of `match`."""

    json = "json"
    table = "table"


class PapersFormat(StrEnum):
    """Output formats of `papers`."""

    jsonl = "jsonl"
    table = "table"


FormatOption = Annotated[MatchFormat, typer.Option("--format", help="json or table")]


def handle_errors(command: F) -> F:
    """Turn a BotError into ``Error: ...`` on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BotError as exc:
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def read_profiles(path: Path) -> Profiles:
    """Read and validate a profiles file named by the user."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        from bot.errors import Problem

        problem = Problem(str(path), None, None, None, f"cannot read: {exc.strerror or exc}")
        raise ProfileError([problem]) from None
    return parse_profiles(text, str(path))


def _subscriber(profiles: Profiles, email: str, path: Path) -> Subscriber:
    """The subscriber with this address, or a clear error."""
    for subscriber in profiles.subscribers:
        if subscriber.email.lower() == email.lower():
            return subscriber
    raise BotError(f"{email} is not a subscriber in {path}")


def settings() -> Settings:
    """The validated settings, with logging set up to match."""
    loaded = load_settings()
    setup_logging(loaded.log_format)
    return loaded


def make_mailer(config: Settings) -> Mailer:
    """SMTP when a host is set, else the outbox directory."""
    if not config.smtp_host:
        return OutboxMailer(config.outbox)
    password = config.smtp_password.get_secret_value() if config.smtp_password else None
    return SmtpMailer(
        config.smtp_host, config.port, security=config.smtp_security,
        username=config.smtp_username, password=password, timeout=config.smtp_timeout,
        connections=config.smtp_connections,
    )  # fmt: skip


def make_fetch(config: Settings, spec: str) -> Callable[[date], Any]:
    """The fetch step for the configured (or given) source spec."""
    specs = sources.parse_spec(spec)

    async def fetch(day: date) -> Fetched:
        options = sources.SourceOptions(include_replacements=config.arxiv_include_replacements)
        report = await sources.fetch_papers(specs, day, options=options)
        outcomes = [
            {"source": o.source, "status": o.status, "count": o.count, "reason": o.reason}
            for o in report.outcomes
        ]
        return Fetched(report.papers, outcomes)

    return fetch


def _print_outcome(outcome: Outcome) -> None:
    if not out.is_terminal:
        print(f"{outcome.status:8} {outcome.email} {outcome.detail}", flush=True)


def _report_table(report: SendReport) -> Table:
    table = Table(title="paperbot send", title_justify="left")
    for column in ("subscriber", "date", "result", "papers", "detail"):
        table.add_column(column)
    colours = {"sent": "green", "failed": "red", "skipped": "yellow", "already": "dim"}
    for o in report.outcomes:
        status = Text(o.status, style=colours.get(o.status, ""))
        table.add_row(Text(o.email), str(o.digest_date or ""), status, str(o.papers), Text(o.detail))
    return table


@app.command()
@handle_errors
def send(
    day: DateOption = None,
    to: Annotated[str | None, typer.Option("--to", help="Send to this subscriber only.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source SPEC")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Match and render only.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Resend even if already sent.")] = False,
) -> None:
    """Send the digest for a date to every active subscriber (or one), once."""
    config = settings()
    profiles = read_profiles(config.profiles)
    if to and to.lower() not in {s.email.lower() for s in profiles.subscribers}:
        raise BotError(f"{to} is not a subscriber in {config.profiles}")
    if day and day.date() > datetime.now(UTC).date() + timedelta(days=1):
        raise BotError(f"--date {day.date()} is in the future; digests are sent for past days")
    mailer = make_mailer(config)
    options = SendOptions(
        day=day.date() if day else None, to=to, dry_run=dry_run, force=force,
        refetch=source is not None,
    )  # fmt: skip
    report = asyncio.run(_send(config, profiles, mailer, options, source or config.sources))
    out.print(_report_table(report))
    counts = report.summary()["counts"]
    out.print(
        f"sent {counts['sent']}, skipped {counts['skipped']}, failed {counts['failed']}, "
        f"already sent {counts['already']}" + (f", dry run {counts['dry-run']}" if dry_run else "")
        + (f", outcome unknown {counts['unknown']} (resent later)" if counts["unknown"] else "")
    )
    if force:
        out.print("[yellow]--force: digests already sent were sent again on purpose.[/]")
    if counts["already"] and not counts["sent"] and not counts["failed"]:
        out.print("These digests were already sent; nothing new to send.")
    if report.stopped:
        err.print(f"[red]Stopped:[/red] {escape(report.stopped)}")
    if isinstance(mailer, OutboxMailer) and not dry_run:
        previews = sorted(config.outbox.glob("*.html"), key=lambda p: p.stat().st_mtime)
        latest = [p for p in previews if p.name != "index.html"][-1:]
        out.print(f"Outbox: {config.outbox}/ — open {config.outbox / 'index.html'} to read them")
        if latest:
            out.print(f"Preview: {latest[0]}")
    if counts["failed"] or counts["unknown"] or report.stopped:
        raise typer.Exit(1)


async def _send(
    config: Settings, profiles: Profiles, mailer: Mailer, options: SendOptions, spec: str
) -> SendReport:
    deps = _deps(config, spec, mailer)
    run_id = None if options.dry_run else deps.store.start_run("send")
    status = "error"
    try:
        with _progress(len(profiles.subscribers) if options.to is None else 1) as advance:
            deps.on_outcome = advance
            async with mailer:
                report = await send_digests(deps, profiles.subscribers, options)
        status = "stopped" if report.stopped else ("failed" if report.count("failed") else "ok")
    finally:
        if run_id is not None:
            deps.store.finish_run(run_id, status, report.summary() if status != "error" else {})
    return report


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar on a terminal; plain lines, one per subscriber, otherwise."""
    if not out.is_terminal:
        yield _print_outcome
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("sending digests", total=total)
        yield lambda outcome: progress.advance(task)


def _deps(config: Settings, spec: str | None = None, mailer: Mailer | None = None) -> Deps:
    return Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(),
        fetch=make_fetch(config, spec or config.sources), clock=lambda: datetime.now(UTC),
        mailer=mailer, on_outcome=_print_outcome,
    )  # fmt: skip


@app.command()
@handle_errors
def fetch(
    day: DateOption = None,
    source: Annotated[str | None, typer.Option("--source", help="Source SPEC")] = None,
) -> None:
    """Fetch the day's papers and store them (running it again changes only counts)."""
    config = settings()
    deps = _deps(config, source)
    when = day.date() if day else datetime.now(UTC).date()
    run_id = deps.store.start_run("fetch")
    summary = asyncio.run(fetch_and_store(deps, when))
    status = "failed" if summary.failed else "ok"
    deps.store.finish_run(run_id, status, {"day": when, "sources": list(summary.sources)})
    for outcome in summary.sources:
        reason = f" ({outcome['reason']})" if outcome.get("reason") else ""
        out.print(f"{outcome['source']}: {outcome['status']}, {outcome['count']} papers{reason}", markup=False)
    out.print(f"{when}: {summary.fetched} papers, {summary.new} new, {summary.updated} updated")
    if summary.failed:
        raise typer.Exit(1)


@app.command()
@handle_errors
def preview(
    email: Annotated[str, typer.Argument(help="The subscriber's email address")],
    day: DateOption = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the HTML")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
) -> None:
    """Render exactly what a subscriber would get, without sending or touching the ledger."""
    config = settings()
    subscriber = _subscriber(read_profiles(config.profiles), email, config.profiles)
    when = day.date() if day else digest_day(subscriber, datetime.now(UTC))
    digest, message = asyncio.run(pipeline_preview(_deps(config), subscriber, when))
    safe = re.sub(r"[^A-Za-z0-9@._-]+", "_", subscriber.email)
    target = out_file or Path(f"preview-{safe}-{when}.html")
    target.write_text(message.html or "", encoding="utf-8")
    out.print(f"Subject: {message.subject}", markup=False, soft_wrap=True)
    out.print(f"{len(digest.matches)} papers, {len(digest.more)} more matches")
    out.print(f"Preview: {target}")
    if open_browser:
        webbrowser.open(target.resolve().as_uri())


@app.command()
@handle_errors
def match(
    profiles: Annotated[Path, typer.Option("--profiles", help="Profiles YAML file")],
    papers: Annotated[Path, typer.Option("--papers", help="Papers JSON Lines file")],
    all_papers: Annotated[bool, typer.Option("--all", help="Rank every paper.")] = False,
    fmt: FormatOption = MatchFormat.json,
) -> None:
    """Score papers for every subscriber in a profiles file."""
    subs = read_profiles(profiles).subscribers
    found = read_papers_file(papers).papers
    chosen = matching.select(subs, found, corpus=found)
    result: list[dict[str, Any]] = []
    for sub in subs:
        picked = chosen[sub.email]
        matches = picked.ranked if all_papers else picked.picked
        rows = [
            {"paper_id": m.paper.id, "score": round(m.score, 4), "reasons": list(m.reasons)}
            for m in matches
        ]
        result.append({"email": sub.email, "matches": rows, "more": len(picked.more)})
    if fmt == "json":
        print(json.dumps({"subscribers": result}, indent=2, ensure_ascii=False))
        return
    titles = {p.id: p.title for p in found}
    for entry in result:
        table = Table(title=f"{entry['email']} ({len(entry['matches'])} picks)", title_justify="left")
        for column in ("score", "paper", "title", "why"):
            table.add_column(column, overflow="fold")
        for m in entry["matches"]:
            table.add_row(f"{m['score']:.2f}", m["paper_id"], titles[m["paper_id"]], "; ".join(m["reasons"]))
        out.print(table)


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
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source SPEC (default: PAPERBOT_SOURCES)"),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="Parse a saved response instead of fetching.")
    ] = None,
    fmt: Annotated[PapersFormat, typer.Option("--format", help="jsonl or table")] = PapersFormat.jsonl,
) -> None:
    """Print the normalised papers a source yields, or that a saved response parses to."""
    config = settings()
    failed = False
    if input_file is not None:
        result = sources.parse_input(
            input_file, source, include_replacements=config.arxiv_include_replacements
        )
        found = result.papers
        notes = [f"{input_file}: {len(found)} papers, {len(result.skipped)} skipped"]
    else:
        specs = sources.parse_spec(source or config.sources)
        options = sources.SourceOptions(include_replacements=config.arxiv_include_replacements)
        when = day.date() if day else datetime.now(UTC).date()
        report = asyncio.run(sources.fetch_papers(specs, when, options=options))
        found, notes, failed = report.papers, [str(o) for o in report.outcomes], bool(report.failed)
    if fmt == "table":
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
def explain(
    email: Annotated[str, typer.Argument(help="The subscriber's email address")],
    paper_id: Annotated[str, typer.Argument(help="The paper's id, e.g. 2401.04088")],
    papers: Annotated[
        Path | None, typer.Option("--papers", help="Explain against a Papers file instead")
    ] = None,
) -> None:
    """Why a paper was or was not picked for a subscriber."""
    config = settings()
    subscriber = _subscriber(read_profiles(config.profiles), email, config.profiles)
    if papers is None:
        verdict = explain_stored(_deps(config), subscriber, paper_id)
    else:
        found = read_papers_file(papers).papers
        paper = next((p for p in found if p.id == paper_id), None)
        if paper is None:
            raise BotError(f"paper {paper_id} is not in {papers}")
        verdict = matching.explain(subscriber, paper, found, corpus=found)
    for line in verdict.lines():
        out.print(line, markup=False, soft_wrap=True)
    if verdict.snippet:
        out.print(f"  snippet: {verdict.snippet}", markup=False, soft_wrap=True)


@profiles_app.command("check")
@handle_errors
def profiles_check(
    file: Annotated[Path | None, typer.Argument(help="Profiles file (default: PAPERBOT_PROFILES)")] = None,
) -> None:
    """Validate a profiles file; every problem is listed with its line."""
    path = file or load_settings().profiles
    parsed = read_profiles(path)
    n = len(parsed.subscribers)
    out.print(f"{path}: OK, {n} subscriber{'s' if n != 1 else ''}")


@app.command()
@handle_errors
def run() -> None:
    """The always-on worker: fetches, sends each digest at its local time, sends alerts."""
    config = settings()
    deps = _deps(config)
    profiles = ProfilesFile(config.profiles, read_profiles)
    worker = Worker(deps, lambda: make_mailer(config), profiles)
    asyncio.run(run_worker(worker, config.sweep_seconds, config.sources))


app.command()(handle_errors(admin_cli.unsubscribe))
app.command()(handle_errors(admin_cli.unsuppress))
app.command()(handle_errors(admin_cli.status))


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", envvar="PORT", help="Port (or $PORT)")] = 8080,
) -> None:
    """Serve the unsubscribe links (PAPERBOT_BASE_URL points here)."""
    config = settings()
    if config.secret_key is None:
        raise ConfigError("invalid settings:\n  PAPERBOT_SECRET_KEY: needed to check unsubscribe links")
    server = UnsubscribeServer((host, port), Store(config.database_url), config.secret_key.get_secret_value())
    out.print(f"Serving unsubscribe links on http://{host}:{server.server_port}/unsubscribe")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the JSON Schema of the profiles file (committed as config/profiles.schema.json)."""
    sys.stdout.write(json_schema_text())


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
