"""What every command shares: the typer apps, consoles, error handling, and the factories that
turn settings into real parts (store, mailer, fetch)."""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from bot import __version__, sources
from bot.delivery_jobs import Outcome
from bot.errors import BotError, Problem, ProfileError, UsageError
from bot.logs import setup_logging
from bot.mailer import Mailer, SmtpMailer
from bot.models import DAYS, Subscriber, email_key
from bot.outbox import OutboxMailer
from bot.pipeline import Deps
from bot.profiles import Profiles, parse_profiles
from bot.render import Renderer
from bot.settings import Settings, load_settings, names_in_env_file, unknown_names
from bot.store import DatabaseFailure, Store, db_reason

F = TypeVar("F", bound=Callable[..., Any])
PIPED_WIDTH = 1000
"""Console width when the output is not a terminal: wide enough that tables and lines in a log
or a pipe are not wrapped."""
FURTHEST_AHEAD = timedelta(hours=14)
"""The largest UTC offset of any time zone (Kiritimati): the first to reach a date."""


class _FlagsTakeNoValue:
    """Flags (``--dry-run``, ``--help``) show no value placeholder in --help."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, flags without a value placeholder."""
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class Command(_FlagsTakeNoValue, TyperCommand):
    """A paperbot command."""


class Group(_FlagsTakeNoValue, TyperGroup):
    """A group of paperbot commands."""


class Typer(typer.Typer):
    """A typer app whose commands are ``Command``s."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """Register a command (a ``Command`` unless ``cls`` says otherwise)."""
        kwargs.setdefault("cls", Command)
        register: Callable[[F], F] = super().command(*args, **kwargs)
        return register


CONTEXT = {"help_option_names": ["-h", "--help"]}
app = Typer(
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings=CONTEXT,
    help="paperbot: research papers picked for you, by email.",
)
profiles_app = Typer(
    cls=Group, no_args_is_help=True, context_settings=CONTEXT,
    help="Check and inspect the profiles file.",
)  # fmt: skip
app.add_typer(profiles_app, name="profiles")


def _show_version(value: bool) -> None:
    if value:
        print(f"paperbot {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """paperbot: research papers picked for you, by email."""


def _console(stream: TextIO, *, stderr: bool = False) -> Console:
    """A console for stdout or stderr: the terminal's width on a terminal, else no wrapping
    (unless COLUMNS says otherwise)."""
    piped = not stream.isatty() and not os.environ.get("COLUMNS", "").isdigit()
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


out = _console(sys.stdout)
err = _console(sys.stderr, stderr=True)


def parse_day(value: str) -> date:
    """A ``--date`` value: a calendar date written YYYY-MM-DD."""
    text = value.strip()
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise typer.BadParameter(f"invalid date {value!r} (use YYYY-MM-DD)")
    try:
        return date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError as exc:
        raise typer.BadParameter(f"invalid date {value!r}: {exc} (use YYYY-MM-DD)") from None


def parse_moment(value: str) -> datetime:
    """A point in time given on the command line: a date, or a date and a time (UTC unless an
    offset follows), written the ISO 8601 way."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"invalid time {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM in UTC, e.g. "
            "2026-11-27 or 2026-11-27T13:00)"
        ) from None


def not_in_future(day: date | None, now: datetime | None = None) -> date | None:
    """``day`` unless it is a date no time zone has reached yet (at ``now``, default now)."""
    if day is not None and day > ((now or datetime.now(UTC)) + FURTHEST_AHEAD).date():
        raise UsageError(f"--date {day} is in the future: no time zone has reached it yet")
    return day


def _date_option(default: str) -> Any:
    """A ``--date`` option whose help says what the date is without one."""
    help_text = f"The date (default: {default})."
    return typer.Option("--date", parser=parse_day, metavar="YYYY-MM-DD", help=help_text)


DateOption = Annotated[date | None, _date_option("today in UTC")]
"""The date of a fetch: the day's lists as the sources date them."""
DigestDateOption = Annotated[date | None, _date_option("today in each subscriber's time zone")]
"""The date of the digests ``send`` sends: a subscriber's own today unless given."""
OneDigestDateOption = Annotated[date | None, _date_option("today in the subscriber's time zone")]
"""The date of one subscriber's digest."""


def _given_source(value: str | None) -> str | None:
    """A ``--source`` value: an empty one is refused rather than read as no option at all (the
    configured sources), which would fetch what the command line did not ask for."""
    if value is not None and not value.strip():
        raise typer.BadParameter("empty: name a source, or leave --source out for PAPERBOT_SOURCES")
    return value


SourceOption = Annotated[
    str | None,
    typer.Option(
        "--source",
        metavar="SPEC",
        callback=_given_source,
        help="Source SPEC (default: PAPERBOT_SOURCES).",
    ),
]

MISSING_PROFILES = (
    "the subscribers file PAPERBOT_PROFILES names: copy config/profiles.example.yaml there and "
    "edit it, or set PAPERBOT_PROFILES to your file"
)

log = logging.getLogger(__name__)


def handle_errors(command: F) -> F:
    """Turn a BotError into ``Error: ...`` on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BotError as exc:
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except DatabaseFailure as exc:  # the database went away, or refuses this user something
            message = f"database error: {db_reason(exc)}"
            err.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def read_profiles(path: Path, *, configured: bool = False) -> Profiles:
    """Read and validate a profiles file named by the user; ``configured`` when PAPERBOT_PROFILES
    named it, which a missing file's error then says, with where to start one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        message = f"cannot read: {exc.strerror or exc}"
        if configured and isinstance(exc, FileNotFoundError):
            message += f" ({MISSING_PROFILES})"
        raise ProfileError([Problem(str(path), None, None, None, message)]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8"
        raise ProfileError([Problem(str(path), line, None, None, message)]) from None
    return parse_profiles(text, str(path))


def print_profile_warnings(profiles: Profiles, only: str | None = None) -> None:
    """The profiles file's warnings, on stderr; with ``only``, those about that subscriber."""
    for warning in profiles.warnings:
        if only is not None and (warning.subscriber or "").lower() != only.lower():
            continue
        err.print(
            f"[yellow]Warning:[/yellow] {escape(str(warning))}", highlight=False, soft_wrap=True
        )


def find_subscriber(profiles: Profiles, email: str) -> Subscriber:
    """The subscriber with this address, or a clear error."""
    try:
        key = email_key(email)
    except ValueError as exc:
        raise BotError(f"not an email address: {exc}") from None
    for subscriber in profiles.subscribers:
        if subscriber.email.lower() == key:
            return subscriber
    meant = closest_address(key, [s.email.lower() for s in profiles.subscribers])
    raise BotError(f"{email} is not a subscriber in {profiles.source}{meant}")


def closest_address(email: str, known: Iterable[str]) -> str:
    """``; did you mean ADDRESS?`` for the known address closest to a mistyped one, or ''."""
    close = difflib.get_close_matches(email, sorted(known), n=1, cutoff=0.8)
    return f"; did you mean {close[0]}?" if close else ""


def not_due(subscriber: Subscriber, day: date) -> str | None:
    """``not due on Thursday 2026-11-26: weekly on Mondays`` when the subscriber's frequency
    calls for no digest on ``day``, else None."""
    why = subscriber.not_due_on(day)
    return None if why is None else f"not due on {DAYS[day.weekday()]} {day}: {why}"


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


def delivery_target(mailer: Mailer) -> str:
    """Where ``mailer`` (from ``make_mailer``) puts messages, in words for an operator."""
    if isinstance(mailer, OutboxMailer):
        return f"writing emails to {mailer.description} (PAPERBOT_SMTP_HOST is not set)"
    return f"delivering by {mailer.description}"


def make_fetch(
    config: Settings, spec: str
) -> Callable[[date], Coroutine[Any, Any, sources.FetchReport]]:
    """The fetch step for the configured (or given) source spec."""
    specs = sources.parse_spec(spec)

    async def fetch(day: date) -> sources.FetchReport:
        options = sources.SourceOptions(include_replacements=config.arxiv_include_replacements)
        return await sources.fetch_papers(specs, day, options=options)

    return fetch


def print_outcome(outcome: Outcome) -> None:
    """One plain line per subscriber (when the output is not a terminal)."""
    print(f"{outcome.status:8} {outcome.email} {outcome.detail}", flush=True)


def make_deps(config: Settings, spec: str | None = None, mailer: Mailer | None = None) -> Deps:
    """The real parts a run needs, from the settings."""
    return Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(),
        fetch=make_fetch(config, spec or config.sources), clock=lambda: datetime.now(UTC),
        mailer=mailer, on_outcome=print_outcome,
    )  # fmt: skip


def main() -> None:
    """Run the command line (``bot.__main__.main``, the console script, imports and calls it);
    a ``PAPERBOT_*`` name that is no setting is pointed out."""
    for warning in unknown_names([*os.environ, *names_in_env_file()]):
        log.warning("%s", warning)
    try:
        app(prog_name="paperbot")
    except KeyboardInterrupt:
        sys.exit(130)
