"""``paperbot send``: the one-off manual send, with a progress bar and a summary table."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text

from bot.cli.app import (
    DateOption,
    SourceOption,
    app,
    err,
    find_subscriber,
    handle_errors,
    make_deps,
    make_mailer,
    out,
    print_outcome,
    read_profiles,
    settings,
)  # fmt: skip
from bot.delivery_jobs import Outcome
from bot.errors import BotError
from bot.mailer import Mailer
from bot.outbox import OutboxMailer
from bot.pipeline import SendOptions, SendReport, send_digests
from bot.profiles import Profiles
from bot.settings import Settings

COLOURS = {
    "sent": "green",
    "failed": "red",
    "unknown": "red",
    "skipped": "yellow",
    "already": "dim",
}


@app.command()
@handle_errors
def send(
    day: DateOption = None,
    to: Annotated[str | None, typer.Option("--to", help="Send to this subscriber only.")] = None,
    source: SourceOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Match and render only.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Resend even if already sent.")] = False,
) -> None:
    """Send the digest for a date to every active subscriber (or one), once."""
    config = settings()
    profiles = read_profiles(config.profiles)
    if to:
        find_subscriber(profiles, to)
    if day and day.date() > datetime.now(UTC).date() + timedelta(days=1):
        raise BotError(f"--date {day.date()} is in the future; digests are sent for past days")
    mailer = make_mailer(config)
    options = SendOptions(
        day=day.date() if day else None, to=to, dry_run=dry_run, force=force,
        refetch=source is not None,
    )  # fmt: skip
    report = asyncio.run(_send(config, profiles, mailer, options, source or config.sources))
    _summarise(report, options, config, mailer)
    counts = report.summary()["counts"]
    if counts["failed"] or counts["unknown"] or report.stopped:
        raise typer.Exit(1)


def _summarise(report: SendReport, options: SendOptions, config: Settings, mailer: Mailer) -> None:
    out.print(_report_table(report))
    counts = report.summary()["counts"]
    line = (
        f"sent {counts['sent']}, skipped {counts['skipped']}, failed {counts['failed']}, "
        f"already sent {counts['already']}"
    )
    line += f", dry run {counts['dry-run']}" if options.dry_run else ""
    line += f", outcome unknown {counts['unknown']} (resent later)" if counts["unknown"] else ""
    out.print(line)
    if options.force:
        out.print("[yellow]--force: digests already sent were sent again on purpose.[/]")
    if counts["already"] and not counts["sent"] and not counts["failed"]:
        out.print("These digests were already sent; nothing new to send.")
    if report.stopped:
        err.print(f"[red]Stopped:[/red] {escape(report.stopped)}")
    if isinstance(mailer, OutboxMailer) and not options.dry_run:
        previews = sorted(config.outbox.glob("*.html"), key=lambda p: p.stat().st_mtime)
        latest = [p for p in previews if p.name != "index.html"][-1:]
        out.print(f"Outbox: {config.outbox}/ — open {config.outbox / 'index.html'} to read them")
        if latest:
            out.print(f"Preview: {latest[0]}")


def _report_table(report: SendReport) -> Table:
    table = Table(title="paperbot send", title_justify="left")
    for column in ("subscriber", "date", "result", "papers", "detail"):
        table.add_column(column)
    for o in report.outcomes:
        status = Text(o.status, style=COLOURS.get(o.status, ""))
        table.add_row(
            Text(o.email), str(o.digest_date or ""), status, str(o.papers), Text(o.detail)
        )
    return table


async def _send(
    config: Settings, profiles: Profiles, mailer: Mailer, options: SendOptions, spec: str
) -> SendReport:
    deps = make_deps(config, spec, mailer)
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
        yield print_outcome
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("sending digests", total=total)
        yield lambda outcome: progress.advance(task)
