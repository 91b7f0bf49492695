"""Admin commands: ``unsubscribe``, ``unsuppress`` and ``status`` (registered by ``bot.cli``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from bot import status as status_view
from bot.errors import BotError
from bot.message import verify_token
from bot.settings import load_settings
from bot.store import Store

UNSUBSCRIBED = "unsubscribed"
out = Console()


def address_from(value: str, secret: str | None) -> str:
    """The address named by an email or by a signed unsubscribe token."""
    value = value.strip()
    if "@" in value:
        return value.lower()
    email = verify_token(secret, value) if secret else None
    if email is None:
        raise BotError("not an email address or a valid unsubscribe token")
    return email


def unsubscribe(
    who: Annotated[str, typer.Argument(metavar="EMAIL|TOKEN", help="Address or link token.")],
) -> None:
    """Stop every email to an address; the profiles file cannot silently undo it."""
    config = load_settings()
    secret = config.secret_key.get_secret_value() if config.secret_key else None
    email = address_from(who, secret)
    store = Store(config.database_url)
    existing = store.suppressed().get(email)
    if existing is not None:
        out.print(f"{email} is already suppressed ({existing.reason}).", highlight=False)
        return
    store.suppress(email, UNSUBSCRIBED)
    out.print(
        f"{email} unsubscribed. An admin can undo it with: paperbot unsuppress {email}",
        highlight=False,
    )


def unsuppress(email: Annotated[str, typer.Argument(help="The address to send to again.")]) -> None:
    """Clear a suppression (an unsubscribe or a permanent failure): the address gets mail again."""
    store = Store(load_settings().database_url)
    reason = store.suppressed().get(email.lower())
    if not store.unsuppress(email):
        raise BotError(f"{email} is not suppressed")
    out.print(f"{email.lower()} may receive mail again (was: {reason.reason if reason else ''}).")


def status(
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Last runs, deliveries by state, pending retries, suppressed addresses."""
    if fmt not in ("table", "json"):
        raise BotError(f"--format must be table or json, not {fmt!r}")
    store = Store(load_settings().database_url)
    data = status_view.collect(store, datetime.now(UTC).date())
    if fmt == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for table in status_view.tables(data):
        out.print(table)
