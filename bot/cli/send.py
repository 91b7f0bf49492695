"""``paperbot send``: the one-off manual send, with a progress bar and a summary table."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text

from bot.cli.app import (
    DigestDateOption,
    SourceOption,
    app,
    err,
    find_subscriber,
    handle_errors,
    make_deps,
    make_mailer,
    not_due,
    not_in_future,
    out,
    print_outcome,
    print_profile_warnings,
    read_profiles,
    settings,
)  # fmt: skip
from bot.delivery_jobs import Outcome
from bot.errors import UsageError
from bot.mailer import Mailer
from bot.models import DAYS
from bot.outbox import OutboxMailer
from bot.pipeline import (
    Deps,
    SendOptions,
    SendReport,
    not_reached,
    run_status,
    send_digests,
)
from bot.profiles import Profiles
from bot.stopping import watch_signals
from bot.store import DatabaseFailure, Removal, db_reason
from bot.store.runs import ONE_SHOT_PATIENCE, Patience, RunRecord
from bot.store.tables import SENDING, STATE_MEANING
from bot.text import plural

COLOURS = {
    "sent": "green",
    "failed": "red",
    "unknown": "red",
    "skipped": "yellow",
    "already": "dim",
}
COMPOSED = {"sent", "dry-run"}
"""Results whose paper count is that of a message composed in this run."""


@app.command()
@handle_errors
def send(
    day: DigestDateOption = None,
    to: Annotated[
        str | None, typer.Option("--to", metavar="EMAIL", help="Send to this subscriber only.")
    ] = None,
    source: SourceOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Match and render only: nothing is sent or recorded, but the papers it "
            "fetches are stored (the day's, when missing or --source is given).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Resend even if already sent.")] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Deactivate most subscribers at once when the profiles file removed them."
        ),
    ] = False,
) -> None:
    """Send the digest for a date to every active subscriber (or one), once."""
    config = settings()
    profiles = read_profiles(config.profiles, configured=True)
    if to is not None:  # as the profiles file writes it, however it was typed ("" is no one)
        to = find_subscriber(profiles, to).email
    print_profile_warnings(profiles, to)  # those of the subscribers this send is about
    not_in_future(day)
    for warning in config.warnings:
        err.print(f"[yellow]Warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    mailer = make_mailer(config)
    options = SendOptions(day=day, to=to, dry_run=dry_run, force=force, refetch=source is not None)
    deps = make_deps(config, source or config.sources, None if dry_run else mailer)
    _check_removal(deps.store.removal(profiles.subscribers), profiles, dry_run=dry_run, yes=yes)
    noted = _not_due_noted(profiles, options)
    settled: list[str] = []
    report = asyncio.run(_send(deps, profiles, mailer, options, noted, settled))
    _summarise(report, options, mailer, settled)
    counts = report.summary()["counts"]
    if counts["failed"] or counts["unknown"] or report.stopped or deps.store.unrecorded:
        raise typer.Exit(1)


def _check_removal(removal: Removal, profiles: Profiles, *, dry_run: bool, yes: bool) -> None:
    """Refuse to deactivate most subscribers at once (see ``Removal.most``) unless ``--yes``
    says so, and warn when it does: a file overwritten or cut short by mistake would stop their
    mail, and once deactivated no later send would tell. A dry run syncs nothing: it warns."""
    if not removal.most:
        return
    removed = f"{profiles.source} removes {removal} at once"
    if dry_run:
        warning = f"{removed}: a send would refuse to deactivate them without --yes"
    elif yes:
        warning = f"{removed}: deactivating them (--yes); they get no more mail"
    else:
        raise UsageError(
            f"{removed}: refusing to deactivate them (they would get no more mail). If the file "
            "was overwritten or cut short by mistake, restore it; if they were removed on "
            "purpose, run again with --yes"
        )
    err.print(f"[yellow]Warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


def _not_due_noted(profiles: Profiles, options: SendOptions) -> Callable[[Outcome], Outcome]:
    """Adds to an outcome's detail that its digest was not due on its date, when ``--to`` or
    ``--date`` asked for it anyway (without them only due digests are sent); not when the date
    has not come where the subscriber is: nothing was included then."""
    if options.to is None and options.day is None:
        return lambda outcome: outcome
    flag = "--to" if options.to else "--date"
    subscribers = {s.email.lower(): s for s in profiles.subscribers}

    def noted(outcome: Outcome) -> Outcome:
        day = outcome.digest_date
        if day is None or outcome.status == "already":  # settled by an earlier run
            return outcome
        subscriber = subscribers[outcome.email.lower()]
        note = not_due(subscriber, day)
        if note is None or not_reached(subscriber, day, datetime.now(UTC)):
            return outcome
        return replace(outcome, detail=f"{outcome.detail} ({note}; included because of {flag})")

    return noted


def _not_due_line(report: SendReport) -> str | None:
    """The line that names the subscribers a send for today left out, their frequency naming no
    digest that day (nothing else in the output names them)."""
    left = [f"{email} ({DAYS[day.weekday()]} {day}: {why})" for email, day, why in report.not_due]
    if not left:
        return None
    more = f" and {len(left) - 3} more" if len(left) > 3 else ""
    return (
        f"Not due today, so left out: {', '.join(left[:3])}{more}. "
        "`paperbot send --to EMAIL` sends one anyway."
    )


BUSY = STATE_MEANING[SENDING]
"""How an outcome says its digest is being sent by another run right now."""


def _summarise(
    report: SendReport,
    options: SendOptions,
    mailer: Mailer,
    settled: Sequence[str],
) -> None:
    """On a terminal the results as a table; in a pipe each result was printed as it came.
    Below the counts, on stderr, the lines ``settled`` (see ``_settling``): they correct them;
    then the subscribers not due today (see ``_not_due_line``)."""
    if out.is_terminal and report.outcomes:
        out.print(_report_table(report))
    counts = report.summary()["counts"]
    line = (
        f"sent {counts['sent']}, skipped {counts['skipped']}, failed {counts['failed']}, "
        f"already done {counts['already']}"
    )
    would = f" ({report.would_send} would be sent)" if counts["dry-run"] else ""
    line += f", dry run {counts['dry-run']}{would}" if options.dry_run else ""
    later = "" if options.force else " (resent later)"  # a forced resend's line says what
    line += f", outcome unknown {counts['unknown']}{later}" if counts["unknown"] else ""
    # a forced resend that did not go stays sent: only another --force sends it
    again = "run it again to send them" if options.force else "the next run sends them"
    line += f", not sent {report.not_sent} ({again})" if report.not_sent else ""
    out.print(line)
    _say(settled)
    if left_out := _not_due_line(report):
        out.print(left_out, markup=False, soft_wrap=True)
    resent = sum(1 for o in report.outcomes if o.status == "sent" and o.resent)
    if resent:
        noun = "digest" if resent == 1 else "digests"
        out.print(f"[yellow]--force: {resent} {noun} sent again on purpose.[/]")
    busy = sum(1 for o in report.outcomes if o.status == "already" and o.detail.startswith(BUSY))
    if busy:
        one = busy == 1
        out.print(
            f"{busy} of them {'is' if one else 'are'} being sent by another run, or "
            f"{'waits' if one else 'wait'} to be sent again at the time given."
        )
    elif counts["already"] == len(report.outcomes) > 0 and not (report.stopped or report.not_sent):
        # only when every digest was settled before: not one skipped now, or left for later
        out.print("Nothing new to send: earlier runs handled these digests.")
    if report.stopped:
        err.print(f"[red]Stopped:[/red] {escape(report.stopped)}", soft_wrap=True)
    if isinstance(mailer, OutboxMailer) and mailer.previews:
        where = f"Outbox: {mailer.directory}/ — open {mailer.index} to read them"
        out.print(where, soft_wrap=True)
        out.print(f"Preview: {mailer.previews[-1]}", soft_wrap=True)


def _report_table(report: SendReport) -> Table:
    table = Table(title="paperbot send", title_justify="left")
    for column in ("subscriber", "date", "result", "papers", "detail"):
        table.add_column(column)
    for o in report.outcomes:
        status = Text(o.status, style=COLOURS.get(o.status, ""))
        table.add_row(
            Text(o.email), str(o.digest_date or ""), status, papers_cell(o), Text(o.detail)
        )
    return table


def papers_cell(outcome: Outcome) -> str:
    """How many papers went (or would go) out; "-" when nothing was composed in this run."""
    return str(outcome.papers) if outcome.papers or outcome.status in COMPOSED else "-"


async def _send(
    deps: Deps,
    profiles: Profiles,
    mailer: Mailer,
    options: SendOptions,
    noted: Callable[[Outcome], Outcome],
    settled: list[str],
) -> SendReport:
    """Run the send; a dry run records no delivery and does not open the mailer (so not even an
    outbox index is written); it stores the day's papers if they were missing. A run whose end
    the database refused (tried again, after what the ledger owes, for ``ONE_SHOT_PATIENCE`` in
    all: see ``_settling``; the log says what was not recorded) still returns what it did: the
    summary shows it, and the command fails. The ledger owes something only after a run that
    stopped or failed: the command fails then too. What became of the ledger's debts goes into
    ``settled``."""
    total = len(profiles.subscribers) if options.to is None else 1
    patience = Patience(ONE_SHOT_PATIENCE)
    recording = (
        contextlib.nullcontext(RunRecord()) if options.dry_run
        else deps.store.run("send", patience=patience)
    )  # fmt: skip
    report: SendReport | None = None
    try:
        with recording as run, _settling(deps, patience, settled), _progress(total) as advance:
            shown = replace(deps, on_outcome=lambda outcome: advance(noted(outcome)))
            async with contextlib.nullcontext() if options.dry_run else mailer:
                on_stop = functools.partial(_stopping, shown)
                with watch_signals(asyncio.get_running_loop(), shown.stop, on_stop):
                    report = await send_digests(shown, profiles.subscribers, options)
            report.outcomes[:] = map(noted, report.outcomes)
            run.status, run.summary = run_status(report), report.summary()
    except DatabaseFailure:
        if report is None or not deps.store.unrecorded:  # the send itself failed
            raise
    assert report is not None
    return report


@contextlib.contextmanager
def _settling(deps: Deps, patience: Patience, settled: list[str]) -> Iterator[None]:
    """After the block, however it ends, write what the ledger owes (``Ledger.owe``: the claims
    the database refused to give back or to record ``sent`` during delivery), tried again with
    ``patience``: no later run of this process will. What is still owed stays ``sending``:
    ``settled`` gets the lines that say so, and what becomes of it, or the one that says which
    messages the summary calls of unknown outcome were recorded ``sent`` meanwhile. The summary
    says them after its counts, which they correct; after a block that failed they are said at
    once (a failed send may print no summary)."""
    ended = False
    try:
        yield
        ended = True
    finally:
        ledger = deps.store.ledger
        try:
            _, sent = patience.keep_trying(lambda: ledger.settle_owed(deps.clock()))
        except DatabaseFailure as exc:
            for line in _still_sending(*ledger.owed, db_reason(exc)):
                settled.append(f"[red]Not recorded:[/red] {escape(line)}")
        else:
            if sent:  # the summary says "outcome unknown": it is known now
                them = "it is" if sent == 1 else "they are"
                settled.append(
                    f"Recorded since: {plural(sent, 'message')} the server accepted, 'sent' "
                    f"once the database came back: {them} not sent again"
                )
        if not ended:
            _say(settled)
            settled.clear()


def _say(lines: Sequence[str]) -> None:
    """Print lines with markup on stderr, unwrapped."""
    for line in lines:
        err.print(line, soft_wrap=True)


def _still_sending(unsent: int, accepted: int, reason: str) -> list[str]:
    """What stays ``sending`` when this process exits owing ``unsent`` claims to give back and
    ``accepted`` ones to record ``sent`` (the database refused, saying ``reason``), and what
    becomes of them: a run on this machine takes them over at once (their process is gone),
    one elsewhere once their lease has run out; each goes with the Message-ID it has."""
    owed = (
        (unsent, "claimed message", "not sent", "give {} back", ""),
        (accepted, "message", "the server accepted", "record {} sent", " again (same Message-ID)"),
    )
    lines = []
    for count, noun, which, refused, again in owed:
        if count:
            them, their = ("it", "its") if count == 1 else ("them", "their")
            lines.append(
                f"{plural(count, noun)} {which}, left 'sending': the database refused to "
                f"{refused.format(them)} ({reason}); the next run sends {them}{again}: at once "
                f"on this machine, elsewhere once {their} lease has run out "
                f"(PAPERBOT_SEND_LEASE_SECONDS after {their} claim)"
            )
    return lines


def _stopping(deps: Deps) -> None:
    """SIGTERM or SIGINT stops a send as it stops the worker (see ``bot.stopping``): what it
    waits for depends on whether sending has begun (a fetch is cancelled at once)."""
    if deps.delivering.is_set():
        err.print("Stopping: the messages being sent finish; signal again to quit at once.")
    else:
        err.print("Stopping before anything is sent; signal again to quit at once.")


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar on a terminal (the table follows); otherwise one plain line per
    subscriber as each is settled."""
    if not out.is_terminal:
        yield print_outcome
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("sending digests", total=total)
        yield lambda outcome: progress.advance(task)
