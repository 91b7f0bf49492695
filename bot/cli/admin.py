"""Admin commands: ``profiles check|schema``, ``unsubscribe``, ``unsuppress``, ``status``."""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote

import typer

from bot import status as status_view
from bot.cli.app import (
    app,
    closest_address,
    err,
    handle_errors,
    out,
    parse_moment,
    print_profile_warnings,
    profiles_app,
    read_profiles,
)
from bot.errors import BotError, ProfileError, UsageError
from bot.message import verify_token
from bot.models import email_key
from bot.profiles import json_schema_text
from bot.settings import load_settings
from bot.store import Store, missing_database
from bot.store.tables import Delivery, Suppression, as_utc

UNSUBSCRIBED = "unsubscribed"
SEND_NOW_MOST = 3
"""Up to how many addresses with digests due again ``unsuppress`` gives a command each to send
them at once; for more, it leaves them to the worker's next sweep."""


class StatusFormat(StrEnum):
    """Output formats of ``status``."""

    table = "table"
    json = "json"


@profiles_app.command("check")
@handle_errors
def profiles_check(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="Profiles file (default: PAPERBOT_PROFILES)"),
    ] = None,
) -> None:
    """Validate a profiles file; every problem is listed with its line, warnings too."""
    path = file or load_settings().profiles
    profiles = read_profiles(path, configured=file is None)
    print_profile_warnings(profiles)
    n, w = len(profiles.subscribers), len(profiles.warnings)
    warned = f", {w} warning{'s' if w != 1 else ''}" if w else ""
    out.print(
        f"{path}: OK, {n} subscriber{'s' if n != 1 else ''}{warned}", soft_wrap=True, markup=False
    )


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the JSON Schema of the profiles file (committed as config/profiles.schema.json)."""
    sys.stdout.write(json_schema_text())


_LINK_TOKEN = re.compile(r"[?&]token=([^&#<>,\s]+)")
"""The token of an unsubscribe link, wherever the link stands in what was pasted."""
_NAMED = re.compile(r"[^<>]*<([^<>]*)>")
"""An address after a display name, as mail clients copy it: ``Ada Lovelace <ada@example.org>``."""
_MAILTO = re.compile(
    r"mailto:([^?&<>,\s]*)"
    r"(?:\?(?:(?!(?i:subject)=)[^&<>,\s]*&)*subject=unsubscribe(?:%20|\+)([^&#<>,\s]+))?"
)
"""A mailto link, and the address the subject of an email's unsubscribe mailto names
(``?subject=unsubscribe%20ada%40example.org``; its first subject, as a mail client reads it),
wherever the link stands in what was pasted."""


def address_from(
    value: str, secret: str | None, previous: Sequence[str] = (), mailbox: str | None = None
) -> str:
    """The address named by an email (alone, or as ``Ada Lovelace <ada@example.org>`` is
    copied from a mail client), by a signed unsubscribe token, or by a whole unsubscribe link
    (as a subscriber forwards it, or as the ``List-Unsubscribe`` header gives it: in ``<>``,
    beside its mailto, or that mailto alone: its subject names the subscriber too, when it is
    written to ``mailbox``, paperbot's unsubscribe mailbox, if one is set)."""
    value = value.strip()
    mailto = _MAILTO.search(value) if "token=" not in value else None
    if mailto:
        to = unquote(mailto.group(1))
        if mailbox and to.lower() != mailbox.lower():  # another list's: not for us to act on
            raise BotError(
                f"the mailto link writes to {to}, not to paperbot's unsubscribe mailbox "
                f"({mailbox}): give the subscriber's EMAIL to unsubscribe them here"
            )
        if not mailto.group(2):  # as the unsubscribe page's mailto: it names no subscriber
            raise BotError(
                f"the mailto link names the mailbox to write to ({to}), not "
                "a subscriber: give the subscriber's EMAIL (the sender of an unsubscribe "
                "request), or the https unsubscribe link from their email or its token"
            )
        return _address(unquote(mailto.group(2)))  # as the subject was written: the address
    if "token=" in value:
        token = _LINK_TOKEN.search(value)
        value = unquote(token.group(1)) if token else ""
    elif "@" in value:
        named = _NAMED.fullmatch(value)
        return _address(named.group(1) if named else value)
    if not secret:
        raise BotError("not an email address, and PAPERBOT_SECRET_KEY is not set to check a token")
    email = verify_token(secret, value, previous)
    if email is None:
        raise BotError(
            "not an email address or a valid unsubscribe token (one signed with an earlier "
            "PAPERBOT_SECRET_KEY is checked once that key is in PAPERBOT_SECRET_KEY_PREVIOUS)"
        )
    return email


def _address(text: str) -> str:
    """``text`` as an address (lower case), or a BotError saying why it is none."""
    try:
        return email_key(text)
    except ValueError as exc:
        raise BotError(f"not an email address: {exc}") from None


@app.command()
@handle_errors
def unsubscribe(
    who: Annotated[str, typer.Argument(metavar="EMAIL|TOKEN", help="Address, link token or link.")],
) -> None:
    """Stop every email to an address; the profiles file cannot silently undo it."""
    config = load_settings()
    secret = config.secret_key.get_secret_value() if config.secret_key else None
    email = address_from(who, secret, config.previous_secrets, config.unsubscribe_mailto)
    store = Store(config.database_url)
    existing = store.suppressed().get(email)
    if existing is not None:
        out.print(
            f"{email} is already suppressed ({existing.reason}).", highlight=False, markup=False
        )
        return
    store.suppress(email, UNSUBSCRIBED)
    out.print(f"{email} unsubscribed. An admin can undo it with:", highlight=False, markup=False)
    out.print(f"  paperbot unsuppress {email}", highlight=False, markup=False, soft_wrap=True)
    known = set(store.subscriber_ids()) | _listed(config.profiles)
    if email not in known:  # a typo would leave the subscriber meant getting mail
        meant = closest_address(email, known)
        note = f"Note: {email} is not a subscriber (suppressed anyway){meant}"
        err.print(note, highlight=False, markup=False, soft_wrap=True)


def _listed(path: Path) -> set[str]:
    """The addresses of a profiles file, lower-cased; none when it cannot be read or is invalid
    (the stored subscribers still count)."""
    try:
        return {s.email.lower() for s in read_profiles(path).subscribers}
    except ProfileError:
        return set()


@app.command()
@handle_errors
def unsuppress(
    emails: Annotated[
        list[str] | None,
        typer.Argument(metavar="EMAIL", help="The addresses to send to again."),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="Every address whose suppression reason holds this text, e.g. 5.1.1."),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            parser=parse_moment,
            metavar="YYYY-MM-DD[THH:MM]",
            help="Every address suppressed from this time on (UTC), e.g. 2026-11-27T13:00.",
        ),
    ] = None,
) -> None:
    """Clear suppressions (an unsubscribe or a permanent failure): the addresses get mail again.

    The messages refused when they were suppressed go with the next run."""
    if not (emails or reason or since) or (emails and (reason or since)):
        raise UsageError("name the addresses, or choose them with --reason and --since")
    if emails and not all(email.strip() for email in emails):
        raise UsageError(
            "EMAIL is empty: name an address, or choose them with --reason and --since"
        )
    store = Store(load_settings().database_url)
    chosen = _suppressions(store, emails or [], reason, since)
    reopened = store.restore(list(chosen.values()), datetime.now(UTC))
    now = sum(1 for email in chosen if reopened[email]) <= SEND_NOW_MOST
    for email, suppression in chosen.items():
        again = [_due_again(email, row, now) for row in reopened[email]]
        line = "; ".join([f"{email} may receive mail again (was: {suppression.reason})", *again])
        out.print(f"{line}.", markup=False, soft_wrap=True)


def _due_again(email: str, row: Delivery, now: bool) -> str:
    """How a message refused when ``email`` was suppressed goes now that it is due again: with
    the worker's next sweep, or a digest (when ``now``) at once with a send to that address
    alone (a send to all would also mail those not due that day)."""
    if row.kind == "alert":
        return f"its alert of {row.digest_date} goes with the worker's next sweep"
    goes = f"its digest for {row.digest_date} goes with the worker's next sweep"
    if not now:
        return goes
    return f"{goes}, or now with `paperbot send --to {shlex.quote(email)} --date {row.digest_date}`"


def _suppressions(
    store: Store, emails: list[str], reason: str | None, since: datetime | None
) -> dict[str, Suppression]:
    """The suppressions named (BotError for an address that is not suppressed), or, without
    names, those whose reason holds ``reason`` and that began at ``since`` or later; an
    unsubscribe only when ``reason`` asks for it (``--since`` alone clears refused addresses,
    not people who asked for no more mail)."""
    every = store.suppressed()
    if emails:
        named = [_key(email) for email in emails]
        missing = [email for email in named if email not in every]
        if missing:
            raise BotError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not suppressed"
            )
        return {email: every[email] for email in named}
    start = as_utc(since.replace(tzinfo=since.tzinfo or UTC)) if since else None
    chosen = {
        email: row for email, row in every.items()
        if (reason.casefold() in row.reason.casefold() if reason else row.reason != UNSUBSCRIBED)
        and (start is None or as_utc(row.created_at) >= start)
    }  # fmt: skip
    if not chosen:
        raise BotError("no suppressed address matches")
    return chosen


def _key(email: str) -> str:
    try:
        return email_key(email)
    except ValueError:
        return email.strip().lower()  # still lets an admin clear an address stored malformed


@app.command()
@handle_errors
def status(
    fmt: Annotated[
        StatusFormat, typer.Option("--format", help="table or json")
    ] = StatusFormat.table,
) -> None:
    """Last runs, deliveries by state, pending retries, suppressed addresses."""
    url = load_settings().database_url
    missing = missing_database(url)
    if missing is not None:  # say so, and do not create it
        err.print(f"No database at {missing} yet (PAPERBOT_DATABASE_URL): nothing has run.")
    store = Store("sqlite://" if missing else url)
    data = status_view.collect(store, datetime.now(UTC))
    if fmt == StatusFormat.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for table in status_view.tables(data):
        out.print(table)
