"""What every command shares: the typer apps, consoles, error handling, and the factories that
turn settings into real parts (store, mailer, fetch)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bot import sources
from bot.delivery_jobs import Outcome
from bot.errors import BotError, Problem, ProfileError
from bot.logs import setup_logging
from bot.mailer import Mailer, SmtpMailer
from bot.models import Subscriber
from bot.outbox import OutboxMailer
from bot.pipeline import Deps, Fetched
from bot.profiles import Profiles, parse_profiles
from bot.render import Renderer
from bot.settings import Settings, load_settings, names_in_env_file, unknown_names
from bot.store import Store

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
SourceOption = Annotated[str | None, typer.Option("--source", help="Source SPEC")]

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

    return wrapper  # type: ignore[return-value]


def read_profiles(path: Path) -> Profiles:
    """Read and validate a profiles file named by the user."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), None, None, None, f"cannot read: {exc.strerror or exc}")
        raise ProfileError([problem]) from None
    return parse_profiles(text, str(path))


def find_subscriber(profiles: Profiles, email: str) -> Subscriber:
    """The subscriber with this address, or a clear error."""
    for subscriber in profiles.subscribers:
        if subscriber.email.lower() == email.lower():
            return subscriber
    raise BotError(f"{email} is not a subscriber in {profiles.source}")


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
    """Console-script entry point; a ``PAPERBOT_*`` name that is no setting is pointed out."""
    for warning in unknown_names([*os.environ, *names_in_env_file()]):
        log.warning("%s", warning)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
