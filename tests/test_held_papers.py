"""A paper goes to a subscriber once: a digest still to be sent (after a crash or a failure)
keeps its papers, a later digest leaves them out, and they are free again once that digest has
failed for good. Through the real entry point, SQLite file and SMTP server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot import matching
from bot.candidates import Target
from bot.cli import app, make_fetch, read_profiles
from bot.jobs import build_digest, claimed_digest
from bot.mailer import SmtpMailer
from bot.models import Paper, Subscriber
from bot.pipeline import (
    Deps,
    SendOptions,
    SendReport,
    fetch_and_store,
    send_digests,
    send_to_targets,
)
from bot.render import Renderer
from bot.settings import load_settings
from bot.sources import FetchReport
from bot.store import OUTCOME_UNKNOWN, Claim, ClaimRequest, Store
from tests.conftest import SmtpServer

runner = CliRunner()
D1, D2, D3 = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)
HELD = ("2611.10001", "2611.10002")
"""Two of ada's three matches of the fixture's day; the third is 2611.10007."""
MESSAGE_ID = "<held@paperbot.example.org>"
ADA = "ada@example.org"


def send(day: date, *args: str, env: dict[str, str] | None = None) -> Any:
    """`paperbot send --date DAY --to ada` in-process: the click Result."""
    return runner.invoke(app, ["send", "--date", day.isoformat(), "--to", ADA, *args], env=env)


def papers_in(message: EmailMessage) -> set[str]:
    """The paper ids a digest shows."""
    body = message.get_body(("plain",))
    assert body is not None
    return set(re.findall(r"26\d\d\.\d{5}", str(body.get_content())))  # type: ignore[attr-defined]


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[Store]:
    """The run's database, with the subscribers synced."""
    found = Store(env["PAPERBOT_DATABASE_URL"])
    found.sync_subscribers(read_profiles(Path(env["PAPERBOT_PROFILES"])).subscribers)
    yield found
    found.close()


def fetch(day: date) -> None:
    """Store the fixture's papers as the list of ``day``."""
    fetched = runner.invoke(app, ["fetch", "--date", day.isoformat()])
    assert fetched.exit_code == 0, fetched.output


def ada(store: Store) -> int:
    sid = store.subscriber_id(ADA)
    assert sid is not None
    return sid


def left_sending(store: Store, day: date, papers: tuple[str, ...] = HELD) -> Claim:
    """Ada's digest for ``day`` as a run that died while sending it left it: ``sending``, its
    lease run out."""
    request = ClaimRequest(ada(store), day, papers, MESSAGE_ID)
    then = datetime.now(UTC) - timedelta(hours=2)
    (claim,) = store.ledger.claim_many([request], then, lease=timedelta(hours=1))
    assert claim is not None
    return claim


def waiting_for_retry(store: Store, day: date) -> Claim:
    """Ada's digest for ``day``, holding HELD, failed for now and retried tomorrow."""
    claim = left_sending(store, day)
    now = datetime.now(UTC)
    retry = now + timedelta(days=1)
    assert store.ledger.mark_failed(claim, now, error="451 try later", code=451, retry_at=retry)
    return claim


def test_a_digest_left_sending_keeps_its_papers_from_the_next_one(
    store: Store, smtp_server: SmtpServer
) -> None:
    """Ada's digest for the 24th was being sent when its run died. The digest for the 25th
    leaves its papers out; the one for the 24th then goes as it was."""
    fetch(D1)
    left_sending(store, D1)
    later = send(D2, env=smtp_server.env())
    assert later.exit_code == 0, later.output
    (second,) = smtp_server.handler.to(ADA)
    assert papers_in(second) == {"2611.10007"}
    resumed = send(D1, env=smtp_server.env())
    assert resumed.exit_code == 0, resumed.output
    assert "taken over from an interrupted run" in resumed.output
    first = smtp_server.handler.to(ADA)[1]
    assert first["Message-ID"] == MESSAGE_ID and papers_in(first) == set(HELD)


async def catch_up(
    store: Store, smtp_server: SmtpServer, held: tuple[str, ...], retry: bool
) -> tuple[list[str], list[EmailMessage]]:
    """A worker catching up sends, in one run, ada's digest for the 24th (left ``sending``
    holding ``held``, or waiting for a due ``retry``) and her new one for the 25th; the papers
    are listed for the 25th (list dates run ahead of some time zones). The run's outcomes, and
    ada's messages (that of the 24th first)."""
    config = load_settings(env_file=None)
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    deps = Deps(
        settings=config, store=store, renderer=Renderer(), fetch=make_fetch(config, config.sources),
        clock=lambda: datetime.now(UTC), mailer=mailer,
    )  # fmt: skip
    await fetch_and_store(deps, D2)
    claim = left_sending(store, D1, held)
    if retry:
        assert store.ledger.release(claim, datetime.now(UTC), "not sent: shutting down")
    subscriber = next(s for s in read_profiles(config.profiles).subscribers if s.email == ADA)
    targets = [Target(subscriber, ada(store), D1), Target(subscriber, ada(store), D2)]
    async with mailer:
        report = await send_to_targets(deps, targets, SendOptions(fetch_missing=False))
    messages = sorted(smtp_server.handler.to(ADA), key=lambda m: m["Message-ID"] != MESSAGE_ID)
    return [o.status for o in report.outcomes], messages


async def test_one_run_resuming_a_digest_does_not_repeat_its_papers_in_the_next(
    env: dict[str, str], store: Store, smtp_server: SmtpServer
) -> None:
    """The digest left ``sending`` goes as it was, with a paper listed for the 25th: the
    digest for the 25th leaves that paper out."""
    statuses, (first, second) = await catch_up(store, smtp_server, ("2611.10001",), False)
    assert statuses == ["sent", "sent"]
    assert papers_in(first) == {"2611.10001"}
    assert papers_in(second) == {"2611.10002", "2611.10007"}


async def test_one_run_retrying_a_digest_shares_the_papers_out_afresh(
    env: dict[str, str], store: Store, smtp_server: SmtpServer
) -> None:
    """A retry carries what is unsent now: the paper its row held, listed for the 25th, goes
    in the digest for the 25th (not in both, nor in neither), and the retry has nothing left."""
    statuses, messages = await catch_up(store, smtp_server, ("2611.10001",), True)
    assert statuses == ["skipped", "sent"]
    assert [papers_in(m) for m in messages] == [{"2611.10001", "2611.10002", "2611.10007"}]


def test_a_digest_waiting_for_its_retry_keeps_its_papers_until_it_fails_for_good(
    store: Store, smtp_server: SmtpServer
) -> None:
    """The digest for the 25th leaves out the papers of the one for the 24th, which waits for
    its retry. Once that one has failed for good, they go in the next digest made."""
    fetch(D1)
    waiting_for_retry(store, D1)
    assert send(D2, env=smtp_server.env()).exit_code == 0
    (second,) = smtp_server.handler.to(ADA)
    assert papers_in(second) == {"2611.10007"}
    now = datetime.now(UTC)
    retried = store.ledger.claim(
        ada(store), D1, now, paper_ids=HELD, new_message_id=lambda: "<x@y>", retry_now=True
    )
    assert retried is not None
    error = "gave up after 8 attempts: 451 try later"
    assert store.ledger.mark_failed(retried, now, error=error, code=451)
    third = send(D3, env=smtp_server.env())
    assert third.exit_code == 0, third.output
    assert papers_in(smtp_server.handler.to(ADA)[1]) == set(HELD)


def test_papers_of_a_digest_given_up_with_its_outcome_unknown_are_not_offered_again(
    store: Store, smtp_server: SmtpServer
) -> None:
    """A digest whose outcome stayed unknown may have reached the subscriber: once given up,
    its papers go in no later digest."""
    fetch(D1)
    left_sending(store, D1)
    assert send(D2, env=smtp_server.env()).exit_code == 0
    resumed = store.ledger.claim(
        ada(store), D1, datetime.now(UTC), paper_ids=HELD, new_message_id=lambda: "<x@y>"
    )
    assert resumed is not None and resumed.resumed
    error = f"{OUTCOME_UNKNOWN} after 3 attempts"
    assert store.ledger.mark_failed(resumed, datetime.now(UTC), error=error, attempted=False)
    third = send(D3, env=smtp_server.env())
    assert third.exit_code == 0, third.output
    assert "nothing matched" in third.output
    assert [papers_in(m) for m in smtp_server.handler.to(ADA)] == [{"2611.10007"}]


@pytest.mark.parametrize("first", ["died", "lost after data"])
def test_papers_of_a_digest_that_may_have_arrived_are_not_offered_again_whatever_its_end(
    store: Store, smtp_server: SmtpServer, first: str
) -> None:
    """A digest whose first attempt may have arrived (its run died while sending it, or the
    connection was lost after its data) keeps its papers also when a later attempt is refused
    for good, with a reply that says nothing of the first."""
    fetch(D1)
    claim = left_sending(store, D1)
    now = datetime.now(UTC)
    if first == "lost after data":
        past = now - timedelta(minutes=1)
        assert store.ledger.mark_unknown(claim, now, error="connection lost", until=past)
    assert send(D2, env=smtp_server.env()).exit_code == 0
    later = datetime.now(UTC)  # after the digest for the 25th was made
    again = store.ledger.claim(
        ada(store), D1, later, paper_ids=HELD, new_message_id=lambda: "<x@y>"
    )
    assert again is not None
    assert store.ledger.mark_failed(again, later, error="554 5.7.1 refused", code=554)
    third = send(D3, env=smtp_server.env())
    assert third.exit_code == 0, third.output
    assert [papers_in(m) for m in smtp_server.handler.to(ADA)] == [{"2611.10007"}]


def test_a_dry_run_shows_the_papers_a_digest_left_sending_goes_with(
    store: Store, smtp_server: SmtpServer
) -> None:
    """The digest left ``sending`` is sent again as it was: the dry run says so, not what
    would match now."""
    left_sending(store, D2, ("2611.10002",))
    dry = send(D2, "--dry-run", env=smtp_server.env())
    assert dry.exit_code == 0, dry.output
    assert "would send 1 paper (taken over from an interrupted run)" in dry.output
    real = send(D2, env=smtp_server.env())
    assert real.exit_code == 0, real.output
    (message,) = smtp_server.handler.to(ADA)
    assert message["Message-ID"] == MESSAGE_ID and papers_in(message) == {"2611.10002"}


def test_a_dry_run_says_a_digest_another_live_run_is_sending_is_not_for_this_run(
    store: Store, smtp_server: SmtpServer
) -> None:
    """A dry run says of a digest another run is sending now what a real run would: it is
    being sent by another run (not "taken over"), and it is not counted as would-be-sent."""
    request = ClaimRequest(ada(store), D2, ("2611.10002",), MESSAGE_ID)
    (claim,) = store.ledger.claim_many([request], datetime.now(UTC), lease=timedelta(hours=1))
    assert claim is not None  # claimed by this process, which is alive, for an hour
    dry = send(D2, "--dry-run", env=smtp_server.env())
    assert dry.exit_code == 0, dry.output
    assert "being sent by another run" in dry.output and "taken over" not in dry.output
    real = send(D2, env=smtp_server.env())
    assert "being sent by another run" in real.output and smtp_server.messages == []


def test_a_dry_run_says_a_digest_left_sending_whose_paper_is_gone_would_fail(
    store: Store, smtp_server: SmtpServer
) -> None:
    left_sending(store, D2, ("2610.99999",))
    dry = send(D2, "--dry-run", env=smtp_server.env())
    assert dry.exit_code == 0, dry.output
    assert "would fail: outcome unknown, and it cannot be sent again as it was: paper " in (
        " ".join(dry.output.split())
    )
    assert "dry run 1 (0 would be sent)" in dry.output


OLD = Paper(
    "2610.00042", "Mixture of Experts with Sparse Expert Routing",
    "Sparse mixture-of-experts models route tokens to experts; we balance their load.",
    url="https://arxiv.org/abs/2610.00042",
)  # fmt: skip
"""A paper ada matches, listed long before the dates sent: no digest of theirs considers it."""


async def send_while_a_run_dies(
    env: dict[str, str], store: Store, smtp_server: SmtpServer, held: str
) -> SendReport:
    """Send ada's digest for the 25th while another run claims it with ``held`` and dies
    (after this run read the ledger, before it claims): this run takes that message over."""
    config = load_settings(env_file=None)
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    real = make_fetch(config, config.sources)

    async def fetch(day: date) -> FetchReport:
        fetched: FetchReport = await real(day)
        left_sending(store, day, (held,))
        return fetched

    deps = Deps(
        settings=config, store=store, renderer=Renderer(), fetch=fetch,
        clock=lambda: datetime.now(UTC), mailer=mailer,
    )  # fmt: skip
    subscribers = read_profiles(config.profiles).subscribers
    async with mailer:
        return await send_digests(deps, subscribers, SendOptions(day=D2, to=ADA))


async def test_a_message_taken_over_is_written_with_a_stored_paper_the_run_did_not_match(
    env: dict[str, str], store: Store, smtp_server: SmtpServer
) -> None:
    store.save_papers([OLD], date(2026, 10, 1))
    report = await send_while_a_run_dies(env, store, smtp_server, OLD.id)
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.detail) == (
        "sent", "1 paper (taken over from an interrupted run)"
    )  # fmt: skip
    (message,) = smtp_server.handler.to(ADA)
    assert message["Message-ID"] == MESSAGE_ID and papers_in(message) == {OLD.id}
    assert OLD.title in str(message["Subject"]) + html_of(message)


async def test_a_message_taken_over_whose_paper_is_gone_fails_for_good(
    env: dict[str, str], store: Store, smtp_server: SmtpServer
) -> None:
    report = await send_while_a_run_dies(env, store, smtp_server, "2610.99999")
    (outcome,) = report.outcomes
    assert outcome.status == "failed"
    assert outcome.detail == (
        f"{OUTCOME_UNKNOWN}, and it cannot be sent again as it was: "
        "paper 2610.99999 is no longer stored"
    )
    row = store.ledger.get(ada(store), D2)
    assert row is not None and row.status == "perm_failed" and row.last_error == outcome.detail
    assert smtp_server.messages == []


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


LIKED = Paper(
    "2609.00777", "Sparse expert routing with learned load balancing",
    "Sparse expert layers route tokens to experts with a learned router; load balancing keeps "
    "every expert busy without auxiliary losses.",
)  # fmt: skip
"""A paper a like-only reader liked, stored weeks before."""


def test_a_message_taken_over_scores_its_stored_paper_with_the_readers_likes(
    tmp_path: Path,
) -> None:
    """A paper of a taken-over claim that this run did not match is scored as any digest of
    the reader's would score it: with the papers they liked, so its like: reason is shown."""
    store = Store(f"sqlite:///{tmp_path / 'likes.db'}")
    reader = Subscriber(email="lin@example.org", interests={"like": [LIKED.id]})
    store.save_papers([LIKED], date(2026, 9, 1))
    store.save_papers([OLD], date(2026, 10, 1))
    day = [Paper("2611.20001", "Crop yields from satellite images", "Yields from images.")]
    selection = matching.select([reader], day, liked=store.papers_by_id([LIKED.id]))
    digest = build_digest(reader, D2, selection[reader.email])
    try:
        held = claimed_digest(digest, (OLD.id,), selection[reader.email], store.papers_by_id)
    finally:
        store.close()
    (match,) = held.matches
    assert match.paper.id == OLD.id
    assert match.reasons == (f"like: similar to {LIKED.id} ({LIKED.title})",)
