"""`paperbot send` end to end through the real entry point, SQLite file and SMTP server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot import pipeline
from bot.cli import app, make_fetch, read_profiles
from bot.mailer import SmtpMailer
from bot.message import verify_token
from bot.models import DAYS
from bot.pipeline import (
    STOPPED_BEFORE_DELIVERY,
    Deps,
    SendOptions,
    run_status,
    send_digests,
)
from bot.render import Renderer
from bot.settings import load_settings, unknown_names
from bot.sources import FetchReport
from bot.store import ClaimRequest, Store
from tests.conftest import SmtpServer, free_port, matched_emails, run_cli, stored_summaries
from tests.smtp_faults import FaultServer

runner = CliRunner()
ROOT = str(Path(__file__).resolve().parents[1])


def send(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run `paperbot send` in-process and return the click Result."""
    return runner.invoke(app, ["send", "--date", "2026-11-25", *args], env=env)


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def test_send_through_smtp_delivers_one_digest_per_matching_subscriber(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    result = send(env=smtp_server.env())
    assert result.exit_code == 0, result.output
    recipients = sorted(str(m["To"]) for m in smtp_server.messages)
    assert recipients == ["Ada Lovelace <ada@example.org>", "Grace Hopper <grace@example.org>"]
    assert "sent 2, skipped 1, failed 0" in result.output

    ada = smtp_server.handler.to("ada@example.org")[0]
    assert "2611.10001" in text_of(ada)
    assert "2611.10005" not in text_of(ada), "the excluded survey must not be picked"
    assert "Heat Diffusion" not in text_of(smtp_server.handler.to("grace@example.org")[0])


def test_message_structure_and_headers(env: dict[str, str], smtp_server: SmtpServer) -> None:
    assert send(env=smtp_server.env()).exit_code == 0
    message = smtp_server.handler.to("ada@example.org")[0]
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert re.fullmatch(r"<[^@<>]+@paperbot\.example\.org>", str(message["Message-ID"]).strip())
    assert message["Date"] and message["List-Id"]
    assert str(message["From"]) == "paperbot <digest@paperbot.example.org>"
    unsubscribe = str(message["List-Unsubscribe"])
    url = re.search(r"<(https://paperbot\.example\.org/unsubscribe\?token=([^>]+))>", unsubscribe)
    assert url and "<mailto:unsubscribe@paperbot.example.org" in unsubscribe
    assert verify_token("test-secret", url.group(2).replace("%3D", "=")) == "ada@example.org"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    subject = str(message["Subject"])
    best = text_of(message).split(" 1. ", 1)[1].split("\n", 1)[0]
    assert re.match(r"\d+ papers? ", subject) and best.strip()[:30] in subject


def test_replies_go_to_the_contact_the_footer_names(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    """The footer asks subscribers to write to PAPERBOT_ADMIN_EMAIL: a reply goes there too,
    not to a sending address nobody may read."""
    editor = {"PAPERBOT_ADMIN_EMAIL": "editor@paperbot.example.org"}
    assert send(env=smtp_server.env() | editor).exit_code == 0
    message = smtp_server.handler.to("ada@example.org")[0]
    assert str(message["Reply-To"]) == "editor@paperbot.example.org"
    assert "write to editor@paperbot.example.org" in " ".join(text_of(message).split())
    assert message.get_all("Reply-To") == ["editor@paperbot.example.org"]
    same = {"PAPERBOT_ADMIN_EMAIL": "Digest@paperbot.example.org"}
    assert send("--force", env=smtp_server.env() | same).exit_code == 0
    assert smtp_server.handler.to("ada@example.org")[1]["Reply-To"] is None, "the sender itself"
    assert send("--force", env=smtp_server.env()).exit_code == 0
    assert smtp_server.handler.to("ada@example.org")[2]["Reply-To"] is None, "no contact set"


NO_UNSUBSCRIBE = {
    "PAPERBOT_BASE_URL": "",
    "PAPERBOT_SECRET_KEY": "",
    "PAPERBOT_UNSUBSCRIBE_MAILTO": "",
}
UNSUBSCRIBE_WARNING = (
    "Warning: emails carry no unsubscribe link: set PAPERBOT_BASE_URL and PAPERBOT_SECRET_KEY, "
    "or PAPERBOT_UNSUBSCRIBE_MAILTO"
)


def test_send_warns_when_emails_can_carry_no_unsubscribe_link(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    dry = send("--dry-run", env=NO_UNSUBSCRIBE)
    assert dry.exit_code == 0, dry.output
    assert dry.stderr.splitlines()[0] == UNSUBSCRIBE_WARNING, "the dry run is the check before"
    result = send(env=smtp_server.env() | NO_UNSUBSCRIBE)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == UNSUBSCRIBE_WARNING
    message = smtp_server.handler.to("ada@example.org")[0]
    assert message["List-Unsubscribe"] is None
    assert "or to stop these emails, write to" in " ".join(text_of(message).split())
    mailto_only = smtp_server.env() | NO_UNSUBSCRIBE | {"PAPERBOT_UNSUBSCRIBE_MAILTO": "u@x.org"}
    quiet = send("--force", env=mailto_only)
    assert quiet.exit_code == 0 and "Warning" not in quiet.output, quiet.output


@pytest.mark.parametrize(
    ("security", "warned"), [("starttls", True), ("none", True), ("tls", False)]
)
def test_send_warns_of_plain_smtp_on_the_tls_port(
    env: dict[str, str], security: str, warned: bool
) -> None:
    """Port 465 expects TLS from the first byte: another security mode there is most likely a
    mistake, but a warning, not an error, as some servers do speak plain SMTP on it."""
    smtp = {"PAPERBOT_SMTP_HOST": "127.0.0.1", "PAPERBOT_SMTP_PORT": "465"}
    result = send("--dry-run", env=smtp | {"PAPERBOT_SMTP_SECURITY": security})
    assert result.exit_code == 0, result.output
    warning = (
        "Warning: PAPERBOT_SMTP_PORT is 465, where servers expect TLS from the first byte, but "
        f"PAPERBOT_SMTP_SECURITY is {security}: set PAPERBOT_SMTP_SECURITY=tls, unless this "
        "server speaks plain SMTP on port 465"
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == ([warning] if warned else [])


def test_send_warns_when_mail_would_come_from_the_placeholder_sender(
    env: dict[str, str], smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PAPERBOT_FROM, mail to an SMTP server would come from paperbot@example.org,
    which servers refuse or junk; the outbox (no SMTP host) is no real mail, and says nothing."""
    monkeypatch.delenv("PAPERBOT_FROM")
    warning = (
        "Warning: PAPERBOT_FROM is not set: emails come from paperbot@example.org, an address of "
        'no real domain that mail servers refuse or file as spam: set PAPERBOT_FROM="Name '
        '<address>" with an address of your own domain'
    )
    result = send(env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == warning
    assert "Warning" not in send("--force", "--dry-run").stderr, "the outbox is no real mail"
    own = smtp_server.env() | {"PAPERBOT_FROM": "paperbot <digest@paperbot.example.org>"}
    assert "Warning" not in send("--force", env=own).stderr


def test_second_run_sends_nothing_new(env: dict[str, str], smtp_server: SmtpServer) -> None:
    assert send(env=smtp_server.env()).exit_code == 0
    first = len(smtp_server.messages)
    again = send(env=smtp_server.env())
    assert again.exit_code == 0, again.output
    assert len(smtp_server.messages) == first
    assert "sent 0" in again.output and "already done 3" in again.output


def test_a_digest_another_run_is_sending_is_said_to_be_in_progress(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    store = Store(env["PAPERBOT_DATABASE_URL"])
    ids = store.sync_subscribers(read_profiles(Path(env["PAPERBOT_PROFILES"])).subscribers).ids
    request = ClaimRequest(ids["ada@example.org"], date(2026, 11, 25), ("x",), "<busy@x>")
    now = datetime.now(UTC)
    assert store.ledger.claim_many([request], now, lease=timedelta(hours=1)) != [None]
    result = send("--to", "ada@example.org", env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert "already done 1" in result.output
    assert "1 of them is being sent by another run, or waits to be sent again" in result.output
    retried = (now + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:")  # the claim's lease
    assert f"(if none is, it is sent again after {retried}" in result.output
    assert smtp_server.messages == []
    pending = json.loads(runner.invoke(app, ["status", "--format", "json"]).output)["upcoming"]
    assert [p["next_attempt"][:17].replace("T", " ") for p in pending] == [retried]


def test_force_resends_deliberately(env: dict[str, str], smtp_server: SmtpServer) -> None:
    assert send(env=smtp_server.env()).exit_code == 0
    forced = send("--force", "--to", "ada@example.org", env=smtp_server.env())
    assert forced.exit_code == 0, forced.output
    ada = smtp_server.handler.to("ada@example.org")
    assert len(ada) == 2 and ada[0]["Message-ID"] != ada[1]["Message-ID"]
    assert str(ada[1]["Subject"]) == str(ada[0]["Subject"]), "the same papers again"
    assert "--force" in forced.output


def test_a_forced_dry_run_says_forced_as_the_send_it_rehearses(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    assert send(env=smtp_server.env()).exit_code == 0
    dry = send("--dry-run", "--force", "--to", "ada@example.org", env=smtp_server.env())
    assert dry.exit_code == 0, dry.output
    (line,) = [x for x in dry.stdout.splitlines() if "ada@example.org" in x]
    assert re.fullmatch(r"dry-run  ada@example\.org would send \d+ papers? \(forced resend\)", line)
    forced = send("--force", "--to", "ada@example.org", env=smtp_server.env())
    assert line.replace("dry-run  ", "sent     ").replace("would send ", "") in forced.stdout


def ada_digest(env: dict[str, str]) -> dict[str, Any]:
    """What the ledger holds of ada's sent digest for 2026-11-25, less when it last changed: a
    forced resend that does not go leaves all of it as it was."""
    store = Store(env["PAPERBOT_DATABASE_URL"])
    sid = store.subscriber_id("ada@example.org")
    row = store.ledger.get(sid, date(2026, 11, 25), "digest", "") if sid is not None else None
    store.close()
    assert row is not None and row.status == "sent", row
    return row.model_dump(exclude={"updated_at", "claimed_by"})


def test_a_forced_resend_that_does_not_go_leaves_the_digest_sent(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    """ada has her digest; a forced resend the server defers, then one stopped by a server
    that cannot be reached, leave it as it was: sent, with its Message-ID, nothing to retry. A
    later send would otherwise retry it with what was never sent to her, another digest (or a
    "nothing matched" note) for the same date."""
    assert send(env=smtp_server.env()).exit_code == 0
    before = ada_digest(env)
    smtp_server.handler.rcpt_replies["ada@example.org"] = ["451 4.2.0 try again later"]
    deferred = send("--force", "--to", "ada@example.org", env=smtp_server.env())
    assert deferred.exit_code == 1, deferred.output
    assert "451 4.2.0 try again later (not sent again: the digest sent before stands)" in (
        deferred.output
    )
    unreachable = smtp_server.env() | {"PAPERBOT_SMTP_PORT": str(free_port())}
    unreachable |= {"PAPERBOT_SMTP_MAX_FAILURES": "1"}
    stopped = send("--force", "--to", "ada@example.org", env=unreachable)
    assert stopped.exit_code == 1
    assert "not sent 1 (run it again to send them)" in stopped.output, stopped.output
    assert "Stopped: 1 connection failure in a row, last: " in stopped.output
    assert ada_digest(env) == before
    smtp_server.handler.rcpt_replies.clear()
    later = send("--to", "ada@example.org", env=smtp_server.env())
    assert "already  ada@example.org already sent for this date" in later.output, later.output
    assert len(smtp_server.handler.to("ada@example.org")) == 1


def test_a_forced_resend_that_may_not_have_arrived_leaves_the_digest_sent(
    env: dict[str, str], faults: FaultServer
) -> None:
    """The connection drops after a forced resend's data: whether it arrived or not, ada has
    her digest. The row stays as it was, sent, and no later run sends it again (it would be
    taken over and, if it then failed for now, retried with what was never sent to her)."""
    assert send(env=faults.env()).exit_code == 0
    before = ada_digest(env)
    faults.handler.data["ada@example.org"] = ["drop"]
    dropped = send("--force", "--to", "ada@example.org", env=faults.env())
    assert "connection closed; not sent again: the digest sent before stands" in dropped.output
    assert "outcome unknown 1\n" in dropped.output and "resent later" not in dropped.output
    assert ada_digest(env) == before
    faults.handler.data.clear()
    later = send("--to", "ada@example.org", env=faults.env())
    assert "already  ada@example.org already sent for this date" in later.output, later.output
    to_ada = [m for m in faults.handler.received() if "ada@example.org" in str(m["To"])]
    assert len(to_ada) == 2, "the first digest, and the resend dropped after its data"


ALAN_INTERESTS = '    interests:\n      keywords: ["quantum error correction"]\n'


def test_a_subscriber_without_interests_is_warned_about_and_served_once_given_some(
    env: dict[str, str], profiles_file: Path, smtp_server: SmtpServer
) -> None:
    """The profiles' warning is printed and the digest is reported as such, not recorded as
    skipped: once the admin adds interests, a send the same day sends it, without --force."""
    listed = profiles_file.read_text()
    profiles_file.write_text(listed.replace(ALAN_INTERESTS, ""))
    first = send(env=smtp_server.env())
    assert first.exit_code == 0, first.output
    warnings = [line for line in first.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, first.stderr
    assert warnings[0].startswith(f"Warning: {profiles_file}:17: subscriber alan@example.org: ")
    assert "field 'interests': no keywords, description," in warnings[0]
    assert "skipped  alan@example.org no interests in the profile" in first.stdout.splitlines()
    assert "sent 2, skipped 1, failed 0, already done 0" in first.stdout
    one = send("--to", "ada@example.org", env=smtp_server.env())
    assert one.exit_code == 0 and "Warning:" not in one.stderr, "only those about whom it sends to"
    profiles_file.write_text(listed.replace("quantum error correction", "sparse experts"))
    again = send(env=smtp_server.env())
    assert again.exit_code == 0 and "Warning:" not in again.stderr, again.output
    assert "sent 1, skipped 0, failed 0, already done 2" in again.stdout
    assert len(smtp_server.handler.to("alan@example.org")) == 1


def test_send_refuses_to_deactivate_most_subscribers_without_yes(
    env: dict[str, str], profiles_file: Path, smtp_server: SmtpServer
) -> None:
    """A profiles file cut short by mistake would stop most subscribers' mail, and once they are
    deactivated no later send would say so: send refuses, changing nothing, until the file is
    restored or --yes says the removal is meant. A dry run, which syncs nothing, warns."""
    assert send(env=smtp_server.env()).exit_code == 0
    store, listed = Store(env["PAPERBOT_DATABASE_URL"]), profiles_file.read_text()
    profiles_file.write_text(listed[: listed.index("  - email: grace@")])  # ada alone
    removed = f"{profiles_file} removes 2 of the 3 subscribers at once"
    dry = send("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"Warning: {removed}: a send would refuse to deactivate them without --yes" in dry.stderr
    refused = send("--force", env=smtp_server.env())
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith(f"Error: {removed}: refusing to deactivate them")
    assert "restore it; if they were removed on purpose, run again with --yes" in refused.stderr
    assert len(store.active_subscribers()) == 3 and len(smtp_server.messages) == 2
    confirmed = send("--force", "--yes", env=smtp_server.env())
    assert confirmed.exit_code == 0, confirmed.output
    warning = f"Warning: {removed}: deactivating them (--yes); they get no more mail"
    assert warning in confirmed.stderr
    assert [s.email for s in store.active_subscribers().values()] == ["ada@example.org"]
    assert len(smtp_server.handler.to("ada@example.org")) == 2
    profiles_file.write_text(listed)  # restored: nothing is deactivated, nothing to confirm
    back = send(env=smtp_server.env())
    assert back.exit_code == 0 and "Warning:" not in back.stderr, back.output
    assert len(store.active_subscribers()) == 3


def test_a_suppressed_subscriber_is_reported_once_and_not_matched(
    env: dict[str, str], smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manual send names the suppressed address in its results, also with --to and --force;
    its digest is not matched (it could not go out)."""
    Store(env["PAPERBOT_DATABASE_URL"]).suppress("grace@example.org", "unsubscribed")
    matched = matched_emails(monkeypatch)
    result = send(env=smtp_server.env())
    assert result.exit_code == 0, result.output
    said = [line for line in result.stdout.splitlines() if "grace@" in line]
    assert said == ["skipped  grace@example.org address is suppressed"]
    forced = send("--to", "grace@example.org", "--force", env=smtp_server.env())
    assert forced.exit_code == 0, forced.output
    assert "skipped  grace@example.org address is suppressed" in forced.stdout.splitlines()
    assert "grace@example.org" not in matched and "ada@example.org" in matched
    assert smtp_server.handler.to("grace@example.org") == []


def test_to_sends_to_one_subscriber_only(env: dict[str, str], smtp_server: SmtpServer) -> None:
    result = send("--to", "grace@example.org", env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert [str(m["To"]) for m in smtp_server.messages] == ["Grace Hopper <grace@example.org>"]


def test_to_finds_the_subscriber_however_the_address_is_typed(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    result = send("--to", " Grace@EXAMPLE.org", env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert [str(m["To"]) for m in smtp_server.messages] == ["Grace Hopper <grace@example.org>"]
    assert "sent     grace@example.org" in result.stdout


def test_to_and_date_say_when_they_send_a_digest_not_due_that_day(
    env: dict[str, str], profiles_file: Path, smtp_server: SmtpServer
) -> None:
    """2026-11-25 is a Wednesday: a weekly digest on Mondays is not due."""
    weekly = "    name: Ada Lovelace\n    frequency: weekly:mon\n"
    profiles_file.write_text(profiles_file.read_text().replace("    name: Ada Lovelace\n", weekly))
    everyone = send("--dry-run", env=smtp_server.env())
    assert "(not due on Wednesday 2026-11-25: weekly on Mondays; included because of --date)" in (
        everyone.stdout
    )
    assert "not due" not in "".join(
        line for line in everyone.stdout.splitlines() if "ada" not in line
    )
    result = send("--to", "ada@example.org", env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert len(smtp_server.handler.to("ada@example.org")) == 1, "an explicit request is obeyed"
    assert result.stdout.splitlines()[0] == (
        "sent     ada@example.org 3 papers "
        "(not due on Wednesday 2026-11-25: weekly on Mondays; included because of --to)"
    )
    again = send("--to", "ada@example.org", env=smtp_server.env())
    assert "ada@example.org already sent for this date" in again.stdout
    assert "not due" not in again.stdout  # an earlier run sent it: nothing to excuse now


async def test_a_date_a_subscriber_has_not_reached_sends_them_nothing_yet(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    """At 03:00 UTC on the 25th it is still the 24th in New York: a digest for the 25th would
    come before grace's digest for her today. She is left out, and nothing is recorded."""
    config = load_settings(env_file=None)
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    deps = Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(),
        fetch=make_fetch(config, config.sources), clock=lambda: datetime(2026, 11, 25, 3, tzinfo=UTC),
        mailer=mailer,
    )  # fmt: skip
    async with mailer:
        subscribers = read_profiles(config.profiles).subscribers
        report = await send_digests(deps, subscribers, SendOptions(day=date(2026, 11, 25)))
    grace = next(o for o in report.outcomes if o.email == "grace@example.org")
    assert (grace.status, grace.detail) == (
        "skipped",
        "it is not yet 2026-11-25 where they are (America/New_York): not sent",
    )
    assert smtp_server.handler.to("grace@example.org") == []
    assert len(smtp_server.handler.to("ada@example.org")) == 1
    sid = deps.store.subscriber_id("grace@example.org")
    assert sid is not None and deps.store.ledger.get(sid, date(2026, 11, 25)) is None


def test_a_date_not_reached_where_a_subscriber_is_includes_nothing_to_excuse(
    env: dict[str, str], profiles_file: Path
) -> None:
    """The latest date --date takes is today at UTC+14, never yet reached at UTC-11: a digest
    not due that day is skipped there, with nothing said about being included."""
    day = (datetime.now(UTC) + timedelta(hours=14)).date()
    other = "mon" if day.weekday() else "tue"
    profiles_file.write_text(
        "subscribers:\n  - email: ada@example.org\n    timezone: Pacific/Pago_Pago\n"
        f"    frequency: weekly:{other}\n    interests:\n      keywords: [experts]\n"
    )
    for flags in ([], ["--to", "ada@example.org"]):
        result = runner.invoke(app, ["send", "--dry-run", "--date", day.isoformat(), *flags])
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == (
            f"skipped  ada@example.org it is not yet {day} where they are (Pacific/Pago_Pago): "
            "not sent"
        )


def test_a_send_for_today_names_the_subscribers_whose_frequency_leaves_them_out(
    env: dict[str, str], profiles_file: Path
) -> None:
    """Without --to and --date, a subscriber not due today gets nothing, and the summary says
    so: on a weekend a weekdays subscriber does not silently vanish from the output."""
    off = DAYS[((datetime.now(UTC) + timedelta(days=2)).weekday())][:3].lower()
    profiles_file.write_text(
        "subscribers:\n"
        "  - email: ada@example.org\n    interests:\n      keywords: [experts]\n"
        f"  - email: grace@example.org\n    frequency: weekly:{off}\n"
        "    interests:\n      keywords: [experts]\n"
    )
    result = runner.invoke(app, ["send", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "grace@" not in "".join(result.stdout.splitlines()[:-1])
    day = datetime.now(UTC).date()
    assert result.stdout.splitlines()[-1] == (
        f"Not due today, so left out: grace@example.org ({DAYS[day.weekday()]} {day}: weekly "
        f"on {DAYS[(day.weekday() + 2) % 7]}s). `paperbot send --to EMAIL` sends one anyway."
    )
    named = runner.invoke(app, ["send", "--dry-run", "--to", "ada@example.org"])
    assert "Not due today" not in named.stdout


def test_nothing_new_is_said_only_when_earlier_runs_handled_every_digest(
    env: dict[str, str], profiles_file: Path
) -> None:
    """ada's digest for today at UTC+14 went; grace's waits for her date to come where she is:
    an earlier run did not handle it, and something is still to send."""
    day = (datetime.now(UTC) + timedelta(hours=14)).date()
    profiles_file.write_text(
        "subscribers:\n"
        "  - email: ada@example.org\n    timezone: Pacific/Kiritimati\n"
        "    interests:\n      keywords: [experts]\n"
        "  - email: grace@example.org\n    timezone: Pacific/Pago_Pago\n"
        "    interests:\n      keywords: [experts]\n"
    )
    assert runner.invoke(app, ["send", "--date", day.isoformat()]).exit_code == 0
    again = runner.invoke(app, ["send", "--date", day.isoformat()])
    assert again.exit_code == 0, again.output
    assert "already  ada@example.org" in again.stdout
    assert "skipped  grace@example.org it is not yet" in again.stdout
    assert "Nothing new to send" not in again.output


def test_to_unknown_subscriber_is_a_clear_error(env: dict[str, str]) -> None:
    result = send("--to", "nobody@example.org")
    assert result.exit_code == 1
    assert "nobody@example.org is not a subscriber" in result.output


def test_an_empty_to_is_an_error_not_a_send_to_nobody(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    """``--to "$EMAIL"`` with the variable unset: an error, not a run that quietly sends
    nothing and exits 0."""
    result = send("--to", "", env=smtp_server.env())
    assert result.exit_code == 1, result.output
    assert "Error: not an email address: ''" in result.stderr
    assert smtp_server.messages == []


def test_a_mistyped_address_is_answered_with_the_subscriber_meant(env: dict[str, str]) -> None:
    for command in (["send", "--to"], ["preview"], ["explain"]):
        args = [*command, "Grce@example.org"] + (["2611.00001"] if command == ["explain"] else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.stderr.endswith(
            "Grce@example.org is not a subscriber in "
            f"{env['PAPERBOT_PROFILES']}; did you mean grace@example.org?\n"
        ), command


def test_dry_run_sends_and_records_nothing(env: dict[str, str], smtp_server: SmtpServer) -> None:
    """Nothing sent, no delivery nor run recorded; only the papers it fetched are stored, as
    its --help says."""
    result = send("--dry-run", env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert smtp_server.messages == []
    assert "dry run 3" in result.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.ledger.counts() == [] and store.recent_runs() == []
    assert store.has_papers_for(date(2026, 11, 25))
    said = runner.invoke(app, ["send", "--help"], env={"COLUMNS": "200"}).output
    assert "nothing is sent or recorded, but the papers it fetches are stored" in said
    assert send(env=smtp_server.env()).exit_code == 0
    assert len(smtp_server.messages) == 2


def test_dry_run_after_a_partial_send_says_what_would_still_go(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    assert send("--to", "ada@example.org", env=smtp_server.env()).exit_code == 0
    result = send("--dry-run", env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert "Nothing new to send" not in result.output
    assert "sent 0, skipped 0, failed 0, already done 1, dry run 2 (1 would be sent)" in (
        result.output
    )
    assert "dry-run  grace@example.org would send 1 paper\n" in result.output
    assert send(env=smtp_server.env()).exit_code == 0
    done = send("--dry-run", env=smtp_server.env())
    assert "already done 3, dry run 0" in done.output
    assert "Nothing new to send: earlier runs handled these digests." in done.output


def test_dry_run_says_a_nothing_matched_note_would_go(
    env: dict[str, str], profiles_file: Path
) -> None:
    profiles_file.write_text(
        profiles_file.read_text().replace(
            "    name: Alan Turing\n", "    name: Alan Turing\n    send_empty: true\n"
        )
    )
    result = send("--dry-run", "--to", "alan@example.org")
    assert result.exit_code == 0, result.output
    assert 'dry-run  alan@example.org would send a "nothing matched" note' in result.output
    assert "dry run 1 (1 would be sent)" in result.output


def test_a_day_no_source_could_fetch_is_left_for_a_later_run(
    env: dict[str, str], tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Nobody is told "nothing matched" about a list that was never read, and nothing is
    recorded: once the source is back, the same command sends every digest."""
    broken = smtp_server.env() | {"PAPERBOT_SOURCES": f"file:{tmp_path}/missing.jsonl"}
    result = send(env=broken)
    assert result.exit_code == 1, result.output
    assert "every source failed" in result.output and "missing.jsonl" in result.output
    assert smtp_server.messages == []
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.ledger.counts() == []
    assert store.recent_runs(1)[0].status == "failed"
    assert "failed" in send("--dry-run", env=broken).output
    result = send(env=smtp_server.env())
    assert result.exit_code == 0, result.output
    assert "sent 2, skipped 1, failed 0" in result.output


def test_a_send_records_what_each_source_did_for_the_day_it_fetched(
    env: dict[str, str], tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The form ``status`` and older runs read: each source's outcome with the day fetched."""
    sources = f"{env['PAPERBOT_SOURCES']},file:{tmp_path}/missing.jsonl"
    result = send(env=smtp_server.env() | {"PAPERBOT_SOURCES": sources})
    assert result.exit_code == 0, result.output
    (summary,) = stored_summaries(env["PAPERBOT_DATABASE_URL"])
    missing = f"cannot read {tmp_path}/missing.jsonl: No such file or directory"
    ok = f'"source": "{env["PAPERBOT_SOURCES"]}", "status": "ok", "count": 8, "reason": null'
    failed = f'"source": "file:{tmp_path}/missing.jsonl", "status": "failed", "count": 0'
    day = '"day": "2026-11-25"'
    recorded = f'"sources": [{{{ok}, {day}}}, {{{failed}, "reason": "{missing}", {day}}}]'
    assert recorded in summary


def test_a_day_the_sources_list_no_paper_for_is_left_for_a_later_run(
    env: dict[str, str], tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A source that answers with nothing (a broken export, a feed not yet published) is no
    ground for "nothing matched" notes: nothing is sent or recorded until papers come."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = send(env=smtp_server.env() | {"PAPERBOT_SOURCES": f"file:{empty}"})
    assert result.exit_code == 1, result.output
    assert "no papers for 2026-11-25: no source listed any" in result.output
    assert smtp_server.messages == []
    assert Store(env["PAPERBOT_DATABASE_URL"]).ledger.counts() == []
    result = send(env=smtp_server.env())
    assert result.exit_code == 0 and "sent 2, skipped 1, failed 0" in result.output


async def test_a_stop_while_the_papers_are_fetched_cancels_the_fetch(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    """A source that does not answer is not waited for once a stop comes: nothing would be sent
    meanwhile. The run ends stopped with nothing settled, so the next one sends every digest."""
    fetching, cancelled = asyncio.Event(), asyncio.Event()

    async def never_answers(day: date) -> FetchReport:
        fetching.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("the source never answers")

    config = load_settings(env_file=None)
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    deps = Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(),
        fetch=never_answers, clock=lambda: datetime.now(UTC), mailer=mailer,
    )  # fmt: skip
    subscribers = read_profiles(config.profiles).subscribers
    async with mailer:
        options = SendOptions(day=date(2026, 11, 25))
        sending = asyncio.ensure_future(send_digests(deps, subscribers, options))
        await fetching.wait()
        deps.stop.set()
        report = await asyncio.wait_for(sending, 10)
    assert cancelled.is_set()
    assert report.stopped == STOPPED_BEFORE_DELIVERY and run_status(report) == "stopped"
    assert report.outcomes == [] and smtp_server.messages == []
    assert deps.store.ledger.counts() == []


async def test_matching_runs_off_the_event_loop_and_a_stop_does_not_wait_for_it(
    env: dict[str, str], smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matching many subscribers takes seconds: the event loop goes on meanwhile (the worker's
    other work, a stop), and a stop ends the run at once, stopped with nothing settled, so the
    next run sends every digest."""
    matching, release = threading.Event(), threading.Event()
    select = pipeline.select

    def slow_select(*args: Any) -> Any:
        matching.set()
        release.wait(10)
        return select(*args)

    monkeypatch.setattr(pipeline, "select", slow_select)
    config = load_settings(env_file=None)
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    deps = Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(),
        fetch=make_fetch(config, config.sources), clock=lambda: datetime.now(UTC), mailer=mailer,
    )  # fmt: skip
    subscribers = read_profiles(config.profiles).subscribers
    options = SendOptions(day=date(2026, 11, 25))
    try:
        async with mailer:
            sending = asyncio.ensure_future(send_digests(deps, subscribers, options))
            while not matching.is_set():  # the loop turns while the thread matches
                await asyncio.sleep(0.01)
            deps.stop.set()
            report = await asyncio.wait_for(sending, 5)
            assert not release.is_set()  # the match never finished: the run did not wait
            assert report.stopped == STOPPED_BEFORE_DELIVERY and run_status(report) == "stopped"
            assert report.outcomes == [] and smtp_server.messages == []
            assert deps.store.ledger.counts() == []
            release.set()
            deps.stop.clear()
            report = await send_digests(deps, subscribers, options)
    finally:
        release.set()
    assert report.stopped is None and report.count("sent") == len(smtp_server.messages) > 0


def test_outbox_when_no_smtp_host(env: dict[str, str]) -> None:
    result = send()
    assert result.exit_code == 0, result.output
    outbox = Path(env["PAPERBOT_OUTBOX"])
    assert len(list(outbox.glob("*.eml"))) == 2
    assert len(list(outbox.glob("*.html"))) == 3  # two previews and the index
    index = (outbox / "index.html").read_text()
    assert "ada@example.org" in index and "grace@example.org" in index
    assert "index.html" in result.output
    assert send().exit_code == 0
    assert len(list(outbox.glob("*.eml"))) == 2


def test_hostile_paper_is_escaped(env: dict[str, str], smtp_server: SmtpServer) -> None:
    assert send(env=smtp_server.env()).exit_code == 0
    html = html_of(smtp_server.handler.to("ada@example.org")[0])
    assert "Mixture of Experts" in html and "at Scale" in html
    assert "<script" not in html.lower()
    assert "onerror" not in html.lower()
    assert "javascript:" not in html.lower()


def test_permanent_refusal_fails_one_and_sends_the_rest(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    smtp_server.handler.rcpt_replies["ada@example.org"] = ["550 5.1.1 no such user"]
    result = send(env=smtp_server.env())
    assert result.exit_code == 1
    assert [str(m["To"]) for m in smtp_server.messages] == ["Grace Hopper <grace@example.org>"]
    assert "failed 1" in result.output and "550" in result.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert "ada@example.org" in store.suppressed()


def test_temporary_refusal_is_retried_by_the_next_manual_send(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    smtp_server.handler.rcpt_replies["ada@example.org"] = ["451 4.3.0 try later", "250 OK"]
    assert send(env=smtp_server.env()).exit_code == 1
    assert smtp_server.handler.to("ada@example.org") == []
    retry = send(env=smtp_server.env())
    assert retry.exit_code == 0, retry.output
    assert len(smtp_server.handler.to("ada@example.org")) == 1
    assert len(smtp_server.handler.to("grace@example.org")) == 1


def test_invalid_profiles_send_nothing_and_exit_2(
    env: dict[str, str], profiles_file: Path, smtp_server: SmtpServer
) -> None:
    text = profiles_file.read_text().replace("America/New_York", "America/Atlantis")
    profiles_file.write_text(text)
    result = send(env=smtp_server.env())
    assert result.exit_code == 2
    assert f"{profiles_file}:14: subscriber grace@example.org: field 'timezone'" in result.output
    assert smtp_server.messages == []


def test_bad_settings_list_every_problem(env: dict[str, str]) -> None:
    bad = {
        "PAPERBOT_SMTP_PORT": "seventy", "PAPERBOT_SMTP_SECURITY": "ssl",
        "PAPERBOT_BASE_URL": "https://p.example.org/" + "x" * 500, "PAPERBOT_SECRET_KEY": "k",
        "PAPERBOT_SOURCES": "hf,bogus", "PAPERBOT_SMTP_HOST": "localhost:2525",
    }  # fmt: skip
    result = runner.invoke(app, ["send"], env=bad)
    assert result.exit_code == 2
    assert (
        "PAPERBOT_SMTP_HOST: 'localhost:2525' includes a port: set PAPERBOT_SMTP_HOST=localhost "
        "and PAPERBOT_SMTP_PORT=2525"
    ) in result.output
    assert "PAPERBOT_SMTP_PORT" in result.output and "PAPERBOT_SMTP_SECURITY" in result.output
    assert "PAPERBOT_BASE_URL" in result.output and "longer than 500" in result.output
    assert "PAPERBOT_SOURCES: invalid source 'bogus'" in result.output


def test_an_unsubscribe_base_url_must_take_a_path(env: dict[str, str]) -> None:
    """Links are the base URL with ``/unsubscribe?token=...`` added: a query or fragment in it
    would break every link. Plain http works, with a warning: one-click needs https."""
    for url in ("https://example.org/p?x=1", "https://example.org/#top"):
        result = runner.invoke(app, ["send", "--dry-run"], env={"PAPERBOT_BASE_URL": url})
        assert result.exit_code == 2, result.output
        assert f"PAPERBOT_BASE_URL: {url!r} has a query or fragment" in result.output
    plain = runner.invoke(
        app, ["send", "--dry-run"], env={"PAPERBOT_BASE_URL": "http://paperbot.example.org"}
    )
    assert plain.exit_code == 0, plain.output
    assert plain.stderr.splitlines()[0] == (
        "Warning: PAPERBOT_BASE_URL is http://, not https://: mail providers such as Gmail "
        "offer one-click unsubscribe (RFC 8058) only for https links"
    )


def test_choices_are_read_in_any_case() -> None:
    config = load_settings(None, smtp_security="STARTTLS", log_format=" JSON")
    assert (config.smtp_security, config.log_format) == ("starttls", "json")


def test_settings_that_go_together_are_checked_with_the_others(env: dict[str, str]) -> None:
    bad = {
        "PAPERBOT_SMTP_PORT": "99999", "PAPERBOT_BASE_URL": "https://p.example.org",
        "PAPERBOT_SECRET_KEY": "", "PAPERBOT_SMTP_USERNAME": "paperbot",
        "PAPERBOT_RETRY_FIRST_SECONDS": "600", "PAPERBOT_RETRY_MAX_SECONDS": "60",
    }  # fmt: skip
    result = runner.invoke(app, ["send"], env=bad)
    assert result.exit_code == 2
    assert "PAPERBOT_SMTP_PORT: Input should be less than or equal to 65535" in result.output
    assert "PAPERBOT_BASE_URL: needs PAPERBOT_SECRET_KEY to sign" in result.output
    assert "PAPERBOT_SMTP_PASSWORD: set both PAPERBOT_SMTP_USERNAME and" in result.output
    assert "PAPERBOT_RETRY_MAX_SECONDS: must not be less than PAPERBOT_RETRY_FIRST" in result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAPERBOT_RETRY_GIVE_UP_HOURS", "inf"),
        ("PAPERBOT_SEND_LEASE_SECONDS", "100000000000000"),
        ("PAPERBOT_RETRY_MAX_SECONDS", "100000000000000"),
        ("PAPERBOT_SWEEP_SECONDS", "100000000000000"),
        ("PAPERBOT_SMTP_TIMEOUT", "inf"),
    ],
)
def test_durations_too_long_to_compute_with_are_bad_settings(
    env: dict[str, str], name: str, value: str
) -> None:
    """Not a traceback later (or at every sweep of the worker) when a date overflows."""
    result = runner.invoke(app, ["send", "--dry-run"], env={name: value})
    assert result.exit_code == 2, result.output
    assert f"{name}: Input should be less than or equal to" in result.output


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_database_in_memory_is_a_bad_setting(env: dict[str, str], url: str) -> None:
    """It would forget the ledger when the run ends, and so send everything again."""
    result = runner.invoke(app, ["send", "--dry-run"], env={"PAPERBOT_DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    assert "PAPERBOT_DATABASE_URL" in result.output and "database in memory" in result.output


def test_a_postgres_url_as_heroku_writes_it_is_read_as_postgresql(env: dict[str, str]) -> None:
    """SQLAlchemy knows no "postgres" dialect: the URL is read as postgresql://, and here the
    server it names is down (not a bad setting)."""
    url = f"postgres://reader:s3cret@127.0.0.1:{free_port()}/paperbot"
    result = runner.invoke(app, ["send", "--dry-run"], env={"PAPERBOT_DATABASE_URL": url})
    assert result.exit_code == 1, result.output
    assert "cannot open the database 'postgresql://reader:***@127.0.0.1:" in result.output
    assert load_settings(None, database_url="postgres+psycopg://h/db").database_url == (
        "postgresql+psycopg://h/db"
    )


def test_misspelt_setting_names_are_pointed_out(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PAPERBOT_SMTP_SECURTY=tls\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    env |= {"PAPERBOT_SMTP_PORTT": "25", "PAPERBOT_DATABASE_URL": f"sqlite:///{tmp_path}/p.db"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "status"], cwd=tmp_path, env=env | {"PYTHONPATH": ROOT},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[:2] == [
        "PAPERBOT_SMTP_PORTT is not a paperbot setting and is ignored"
        " (did you mean PAPERBOT_SMTP_PORT?)",
        "PAPERBOT_SMTP_SECURTY is not a paperbot setting and is ignored"
        " (did you mean PAPERBOT_SMTP_SECURITY?)",
    ]
    (tmp_path / ".env").write_bytes("PAPERBOT_FROM=René <a@example.org>\n".encode("latin-1"))
    done = subprocess.run(
        [sys.executable, "-m", "bot", "status"], cwd=tmp_path, env=env | {"PYTHONPATH": ROOT},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid settings: .env is not UTF-8 text" in done.stderr
    assert unknown_names(["PAPERBOT_FROM", "PAPERBOT_SMTP_HOST", "HOME", "paperbot_zzz"]) == [
        "PAPERBOT_ZZZ is not a paperbot setting and is ignored"
    ]


@pytest.mark.parametrize("removed", ["grace@example.org"])
def test_profiles_sync_deactivates_removed_subscribers(
    env: dict[str, str], profiles_file: Path, smtp_server: SmtpServer, removed: str
) -> None:
    assert send(env=smtp_server.env()).exit_code == 0
    text = profiles_file.read_text()
    start = text.index("  - email: grace@example.org")
    end = text.index("  - email: alan@example.org")
    profiles_file.write_text(text[:start] + text[end:])
    assert send("--date", "2026-11-26", env=smtp_server.env()).exit_code == 0
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert removed not in {s.email for s in store.active_subscribers().values()}
    assert store.ledger.counts()  # history kept


def cells(output: str, email: str) -> list[str]:
    """The cells of the table row for ``email``."""
    row = next(line for line in output.splitlines() if email in line)
    return [cell.strip() for cell in row.strip("│ ").split("│")]


def test_piped_send_lists_each_result_once_without_a_table(env: dict[str, str]) -> None:
    code, output = run_cli(env, "send", "--date", "2026-11-25")
    assert code == 0, output
    lines = output.splitlines()
    results = [line for line in lines if not line.startswith(("Outbox:", "Preview:"))]
    for email in ("ada@example.org", "grace@example.org", "alan@example.org"):
        assert sum(email in line for line in results) == 1, output
    assert "sent     ada@example.org" in output and "skipped  alan@example.org" in output
    assert "┃" not in output and "│" not in output
    assert "sent 2, skipped 1, failed 0, already done 0" in lines


def test_terminal_send_shows_one_table(env: dict[str, str]) -> None:
    code, output = run_cli(env, "send", "--date", "2026-11-25", tty=True)
    assert code == 0, output
    assert "subscriber" in output and "papers" in output, "the table"
    rows = [line for line in output.splitlines() if line.startswith("│")]
    for email in ("ada@example.org", "grace@example.org", "alan@example.org"):
        assert sum(email in line for line in rows) == 1, output
    assert "sent     ada@example.org" not in output, "no plain lines on a terminal"
    assert cells(output, "ada@example.org")[2:4] == ["sent", "3"]
    assert cells(output, "alan@example.org")[2:5] == ["skipped", "-", "nothing matched"]
    code, again = run_cli(env, "send", "--date", "2026-11-25", tty=True)
    assert code == 0, again
    assert cells(again, "ada@example.org")[2:5] == ["already", "-", "already sent for this date"]


def test_force_says_so_only_when_something_was_resent(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    first = send("--force", env=smtp_server.env())
    assert first.exit_code == 0, first.output
    assert "sent 2" in first.output and "--force" not in first.output
    again = send("--force", "--to", "ada@example.org", env=smtp_server.env())
    assert "--force: 1 digest sent again on purpose." in again.output


def test_force_sends_again_what_a_digest_carried_but_not_what_an_alert_did(
    env: dict[str, str], smtp_server: SmtpServer
) -> None:
    """An alert carried 2611.10001 to ada before her digest: a forced digest leaves it out as
    the first one did. grace's digest was skipped earlier: forcing it sends it for the first
    time, not "again"."""
    store = Store(env["PAPERBOT_DATABASE_URL"])
    ids = store.sync_subscribers(read_profiles(Path(env["PAPERBOT_PROFILES"])).subscribers).ids
    ada, grace = ids["ada@example.org"], ids["grace@example.org"]
    day, now = date(2026, 11, 25), datetime(2026, 11, 25, 6, tzinfo=UTC)
    assert store.ledger.record_skipped(grace, day, now, "nothing matched")
    request = ClaimRequest(ada, day, ("2611.10001",), "<a1@example.org>", "alert", "2611.10001")
    (alert,) = store.ledger.claim_many([request], now)
    assert alert is not None
    store.ledger.mark_sent(alert, now)
    first, again = (
        send(env=smtp_server.env()),
        send("--force", "--to", "ada@example.org", env=smtp_server.env()),
    )
    for run in (first, again):
        assert run.exit_code == 0, run.output
    digests = smtp_server.handler.to("ada@example.org")
    assert len(digests) == 2
    assert all("2611.10001" not in html_of(message) for message in digests)
    forced = send("--force", "--to", "grace@example.org", env=smtp_server.env())
    assert len(smtp_server.handler.to("grace@example.org")) == 1
    assert "(forced)" in forced.output and "resend" not in forced.output
    assert "sent again on purpose" not in forced.output


def test_preview_line_names_only_what_this_run_wrote(env: dict[str, str]) -> None:
    outbox = Path(env["PAPERBOT_OUTBOX"])
    first = send()
    preview = re.search(r"^Preview: (.+)$", first.stdout, re.M)
    assert preview and Path(preview.group(1)).parent == outbox
    assert Path(preview.group(1)) in set(outbox.glob("*@example.org_*.html"))
    again = send()
    assert again.exit_code == 0, again.output
    assert "Preview:" not in again.output and "Outbox:" not in again.output
    assert "Nothing new to send" in again.output


def test_dry_run_writes_nothing(env: dict[str, str]) -> None:
    result = send("--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run 3" in result.output
    assert not Path(env["PAPERBOT_OUTBOX"]).exists(), "not even an empty outbox or its index"
    assert "Outbox:" not in result.output and "Preview:" not in result.output


def test_a_send_whose_end_the_database_refuses_still_reports_what_it_sent_and_says_so(
    env: dict[str, str], smtp_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away once the digests are sent: the run's end cannot be recorded.
    The send tries again for a while, then prints its summary all the same, says on stderr
    which run was not recorded and how it ended, and exits 1; ``status`` names the process
    of the run, which shows as still going while that process lives."""
    folder = tmp_path / "db"
    folder.mkdir()
    env = env | smtp_server.env() | {"PAPERBOT_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}"}
    monkeypatch.setattr("bot.cli.send.ONE_SHOT_PATIENCE", 0.6)

    async def then_the_database_goes(deps: Deps, *args: Any) -> Any:
        report = await send_digests(deps, *args)
        deps.store.engine.dispose()  # no connection stays open to the moved file
        folder.rename(tmp_path / "db-moved")
        return report

    monkeypatch.setattr("bot.cli.send.send_digests", then_the_database_goes)
    result = send(env=env)
    assert result.exit_code == 1, result.output
    assert len(smtp_server.messages) == 2
    assert "sent 2, skipped 1, failed 0" in result.stdout
    (said,) = [line for line in result.stderr.splitlines() if "was not recorded" in line]
    host = f"{socket.gethostname()}:{os.getpid()}"
    assert f"the end of run 1 ({host}) was not recorded: it ended ok (sent 2 skipped 1), " in said
    assert said.endswith("but the database refused to record it: unable to open database file; "
                         "paperbot status shows the run interrupted once this process has ended, "
                         "with the messages it recorded sent")  # fmt: skip
    (tmp_path / "db-moved").rename(folder)
    shown = runner.invoke(app, ["status", "--format", "json"], env=env)
    (run,) = json.loads(shown.stdout)["runs"]
    assert (run["command"], run["status"], run["process"]) == ("send", "running", host)
    assert run["counts"] == {"sent": 2}, "what it sent, from the ledger"
    table = runner.invoke(app, ["status"], env=env | {"COLUMNS": "300"}).stdout
    assert re.search(rf"│ 1 +│ send +│ running +│ .* │ {re.escape(host)} +│\n", table), table


def the_database_goes(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    moved: Path,
    *,
    before_sending: bool = False,
    back_after: float | None = None,
) -> None:
    """In the next send, the database file goes away (to ``moved``) as delivery records its
    first accepted message ``sent``: that fails; or, ``before_sending``, once the messages are
    claimed: what delivery reads next (the suppression list) fails. It comes back
    ``back_after`` seconds later, if given."""

    async def with_the_database_going(deps: Deps, *args: Any) -> Any:
        ledger = deps.store.ledger
        name = "claim_many" if before_sending else "mark_sent_many"
        real = getattr(ledger, name)

        def gone(*args: Any, **kwargs: Any) -> Any:
            setattr(ledger, name, real)  # once only
            claims = real(*args, **kwargs) if before_sending else None
            deps.store.engine.dispose()  # no connection stays open to the moved file
            folder.rename(moved)
            if back_after is not None:
                threading.Timer(back_after, moved.rename, (folder,)).start()
            return claims if before_sending else real(*args, **kwargs)

        setattr(ledger, name, gone)
        return await send_digests(deps, *args)

    monkeypatch.setattr("bot.cli.send.send_digests", with_the_database_going)


def test_a_send_writes_what_the_database_refused_during_delivery_once_it_is_back(
    env: dict[str, str], smtp_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away as the server accepts the message: its ``sent`` cannot be
    recorded. It is back before the command's patience runs out: the command records it
    ``sent`` before it exits (no later run resends it), and the run's end too, and says
    nothing of a message left ``sending``."""
    folder = tmp_path / "db"
    folder.mkdir()
    env = env | smtp_server.env() | {"PAPERBOT_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}"}
    monkeypatch.setattr("bot.cli.send.ONE_SHOT_PATIENCE", 5.0)
    the_database_goes(monkeypatch, folder, tmp_path / "moved", back_after=0.5)
    result = send("--to", "ada@example.org", env=env)
    assert len(smtp_server.messages) == 1
    assert "outcome unknown 1" in result.stdout, "the summary says what the run saw"
    assert "Not recorded" not in result.stderr and "was not recorded" not in result.stderr
    assert (
        "Recorded since: 1 message the server accepted, 'sent' once the database came back: "
        "it is not sent again" in result.stderr
    ), result.stderr
    lines = result.output.splitlines()
    summary = next(i for i, line in enumerate(lines) if "outcome unknown 1" in line)
    assert lines[summary + 1].startswith("Recorded since: "), "below the counts it corrects"
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert [state for _, state, _ in store.ledger.counts()] == ["sent"]
    (run,) = store.recent_runs()
    assert run.status == "stopped" and run.finished_at is not None
    store.close()


def test_a_send_whose_database_stays_away_says_what_stays_sending_and_fails(
    env: dict[str, str], smtp_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away as the server accepts the message and does not come back: the
    command tries for a while, then prints its summary, says on stderr what stays ``sending``
    and what becomes of it, and exits 1."""
    folder = tmp_path / "db"
    folder.mkdir()
    env = env | smtp_server.env() | {"PAPERBOT_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}"}
    monkeypatch.setattr("bot.cli.send.ONE_SHOT_PATIENCE", 0.6)
    the_database_goes(monkeypatch, folder, tmp_path / "moved")
    result = send("--to", "ada@example.org", env=env)
    assert result.exit_code == 1, result.output
    assert len(smtp_server.messages) == 1
    assert "sent 0, skipped 0, failed 0, already done 0, outcome unknown 1" in result.stdout
    lines = result.output.splitlines()
    summary = next(i for i, line in enumerate(lines) if "outcome unknown 1" in line)
    said = lines[summary + 1]
    assert said == (
        "Not recorded: 1 message the server accepted, left 'sending': the database refused to "
        "record it sent (unable to open database file); the next run sends it again (same "
        "Message-ID): at once on this machine, elsewhere once its lease has run out "
        "(PAPERBOT_SEND_LEASE_SECONDS after its claim)"
    )
    assert "was not recorded" in result.stderr, "nor was the run's end"
    (tmp_path / "moved").rename(folder)
    store = Store(env["PAPERBOT_DATABASE_URL"])
    (row,) = store.ledger.digests_on([date(2026, 11, 25)]).values()
    assert row.status == "sending"
    assert row.message_id == smtp_server.messages[0]["Message-ID"], "as it was sent"
    store.close()


@pytest.mark.parametrize("back", [True, False], ids=["back", "away"])
def test_a_send_the_database_left_before_sending_gives_back_what_it_claimed_if_it_can(
    env: dict[str, str],
    smtp_server: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    back: bool,
) -> None:
    """The database goes away once the digest is claimed: the send ends with that error, and
    the claim cannot be given back. Back before the command's patience runs out, it is given
    back before the command exits: the next send sends it at once. Still away, stderr says
    it stays ``sending`` and what becomes of it."""
    folder = tmp_path / "db"
    folder.mkdir()
    env = env | smtp_server.env() | {"PAPERBOT_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}"}
    monkeypatch.setattr("bot.cli.send.ONE_SHOT_PATIENCE", 5.0 if back else 0.6)
    the_database_goes(
        monkeypatch, folder, tmp_path / "moved", before_sending=True,
        back_after=0.5 if back else None,
    )  # fmt: skip
    result = send("--to", "ada@example.org", env=env)
    assert result.exit_code == 1, result.output
    assert smtp_server.messages == []
    assert "Error: database error: unable to open database file" in result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("Not recorded")]
    if back:
        assert said == []
    else:
        assert said == [
            "Not recorded: 1 claimed message not sent, left 'sending': the database refused to "
            "give it back (unable to open database file); the next run sends it: at once on "
            "this machine, elsewhere once its lease has run out (PAPERBOT_SEND_LEASE_SECONDS "
            "after its claim)"
        ]
        (tmp_path / "moved").rename(folder)
    monkeypatch.setattr("bot.cli.send.send_digests", send_digests)  # an ordinary send
    again = send("--to", "ada@example.org", env=env)
    sent_now = [m["To"] for m in smtp_server.messages]
    assert sent_now == (["Ada Lovelace <ada@example.org>"] if back else []), again.output
