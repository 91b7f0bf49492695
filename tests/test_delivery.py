"""SMTP trouble handled like a real mailer: `paperbot send` against a fault-injecting server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.composer import PER_TASK, worker_count
from bot.delivery import BATCH
from bot.refusals import FEW_DOMAINS_IN_ROW, MAILBOX_DOMAINS, REFUSALS_IN_ROW
from bot.store import Store
from bot.store.tables import Delivery
from tests.conftest import (
    UNMATCHED,
    crowd_profiles,
    free_port,
    reader,
    server_context,
    silent_proxy,
)
from tests.smtp_faults import FaultServer, serve

runner = CliRunner()
ADA, GRACE = "ada@example.org", "grace@example.org"


@pytest.fixture
def auth_faults() -> Iterator[FaultServer]:
    yield from serve(auth=True)


def send(server: FaultServer, **extra: str) -> Any:
    """`paperbot send` for the fixture day against the fault server."""
    return runner.invoke(app, ["send", "--date", "2026-11-25"], env=server.env(**extra))


def row(env: dict[str, str], email: str) -> Delivery:
    store = Store(env["PAPERBOT_DATABASE_URL"])
    sid = store.subscriber_id(email)
    assert sid is not None
    found = store.ledger.get(sid, datetime(2026, 11, 25).date())
    assert found is not None
    return found


def test_451_then_250_backs_off_then_a_manual_send_retries_at_once(
    env: dict[str, str], faults: FaultServer
) -> None:
    faults.handler.rcpt[ADA] = ["451 4.3.0 try later", "250 OK"]
    before = datetime.now(UTC)
    first = send(faults)
    assert first.exit_code == 1 and "failed 1" in first.output
    failed = row(env, ADA)
    assert (failed.status, failed.attempts, failed.last_code) == ("temp_failed", 1, 451)
    assert failed.next_attempt_at is not None
    wait = failed.next_attempt_at - before
    assert timedelta(minutes=4) <= wait <= timedelta(minutes=6, seconds=5), "5 min, +/- 20%"
    assert len(faults.handler.to(GRACE)) == 1, "one failure never stops the batch"
    again = send(faults)
    assert again.exit_code == 0, again.output
    assert len(faults.handler.to(ADA)) == 1 and row(env, ADA).status == "sent"
    assert str(faults.handler.to(ADA)[0]["Message-ID"]) == failed.message_id


def test_550_is_permanent_and_suppresses_the_address(
    env: dict[str, str], faults: FaultServer
) -> None:
    faults.handler.rcpt[ADA] = ["550 5.1.1 no such user"]
    assert send(faults).exit_code == 1
    assert row(env, ADA).status == "perm_failed"
    reason = Store(env["PAPERBOT_DATABASE_URL"]).suppressed()[ADA].reason
    assert "550" in reason
    again = send(faults)
    assert faults.handler.to(ADA) == [] and faults.handler.commands["RCPT"] == 2
    assert "failed permanently" in again.output


@pytest.mark.parametrize(
    ("where", "reply", "suppressed"),
    [("data", "554 5.7.1 Message rejected: spam content", False),
     ("data", "554 Transaction failed", False),
     ("rcpt", "554 5.7.1 Relay access denied", False),
     ("data", "550 5.1.1 mailbox unknown", True),
     ("data", "550 5.2.1 mailbox disabled", True)],
)  # fmt: skip
def test_only_a_refused_mailbox_suppresses_the_address(
    env: dict[str, str], faults: FaultServer, where: str, reply: str, suppressed: bool
) -> None:
    """A refused message (its content, a policy) fails for good without barring the address."""
    getattr(faults.handler, where)[ADA] = [reply]
    result = send(faults)
    assert result.exit_code == 1 and "Stopped" not in result.output
    failed = row(env, ADA)
    assert (failed.status, failed.last_code) == ("perm_failed", int(reply[:3]))
    assert (ADA in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()) is suppressed
    assert len(faults.handler.to(GRACE)) == 1


@pytest.mark.parametrize("domains", [1, 2, 3])
def test_a_server_refusing_every_mailbox_stops_the_send_and_suppresses_nobody(
    env: dict[str, str], faults: FaultServer, tmp_path: Path, domains: int
) -> None:
    """A relay answering 550 5.1.1 to every RCPT (it serves other domains only) is at fault,
    not the 30 addresses: the send stops, and every digest waits for the next one. So it is
    when every subscriber has one of one or two domains (one company's list), after more
    refusals in a row."""
    crowd = crowd_profiles(tmp_path / "crowd.yaml", 30, *UNMATCHED, domains=domains)
    emails = [reader(n, domains) for n in range(30)]
    faults.handler.rcpt.update({email: ["550 5.1.1 no such user"] for email in emails})
    result = send(faults, PAPERBOT_PROFILES=str(crowd))
    connections = 4  # the default: the refusals in flight when the run stops are given back too
    row = REFUSALS_IN_ROW if domains >= MAILBOX_DOMAINS else FEW_DOMAINS_IN_ROW
    assert row <= faults.handler.commands["RCPT"] < row + connections
    assert result.exit_code == 1
    assert "Stopped" in result.output and "refused the same way" in result.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.suppressed() == {}
    assert {state: n for _, state, n in store.ledger.counts()} == {"temp_failed": 30}


def test_dead_addresses_of_a_one_domain_list_are_suppressed_and_the_rest_delivered(
    env: dict[str, str], faults: FaultServer, tmp_path: Path
) -> None:
    """5 dead addresses in a row of one company's list are not the relay refusing everyone: the
    other 15 are delivered, the 5 suppressed, and the next run has nothing left to stop on."""
    crowd = crowd_profiles(tmp_path / "crowd.yaml", 20, *UNMATCHED)
    dead = [reader(n) for n in range(5, 10)]
    faults.handler.rcpt.update({email: ["550 5.1.1 no such user"] for email in dead})
    result = send(faults, PAPERBOT_PROFILES=str(crowd), PAPERBOT_SMTP_CONNECTIONS="1")
    assert result.exit_code == 1 and "Stopped" not in result.output, result.output
    assert set(Store(env["PAPERBOT_DATABASE_URL"]).suppressed()) == set(dead)
    delivered = {reader(n) for n in range(20)} - set(dead)
    assert all(len(faults.handler.to(email)) == 1 for email in delivered)


@pytest.mark.parametrize(
    ("where", "reply"), [("rcpt", "421 4.4.2 closing"), ("data", "552 5.2.2 mailbox full")]
)
def test_421_and_552_are_temporary(
    env: dict[str, str], faults: FaultServer, where: str, reply: str
) -> None:
    getattr(faults.handler, where)[ADA] = [reply, "250 OK"]
    assert send(faults).exit_code == 1
    assert row(env, ADA).status == "temp_failed"
    assert ADA not in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()
    assert len(faults.handler.to(GRACE)) == 1
    assert send(faults).exit_code == 0 and len(faults.handler.to(ADA)) == 1


STOPPED_SUMMARY = (
    "sent 0, skipped 1, failed 0, already done 0, not sent 2 (the next run sends them)\n"
)
"""The summary of a fixture-day send stopped before the server had either digest: neither
failed, and the next run sends both."""


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_535_on_auth_stops_the_run_without_blaming_anyone(
    env: dict[str, str], auth_faults: FaultServer
) -> None:
    result = send(auth_faults, PAPERBOT_SMTP_USERNAME="u", PAPERBOT_SMTP_PASSWORD="wrong")
    assert result.exit_code == 1
    assert "Stopped" in result.output and "authentication failed" in result.output
    assert STOPPED_SUMMARY in result.output, result.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.suppressed() == {}
    assert all(state != "perm_failed" for _, state, _ in store.ledger.counts())


@pytest.mark.parametrize(
    ("security", "said"),
    [("starttls", ": the server does not offer STARTTLS on this port: use the port where it does"),
     ("tls", " (WRONG_VERSION_NUMBER): this port does not speak TLS from the first byte: use "
             "PAPERBOT_SMTP_SECURITY=starttls (port 587) or the server's TLS port (465)")],
)  # fmt: skip
def test_a_security_mode_the_port_does_not_speak_stops_the_run_at_once(
    env: dict[str, str], faults: FaultServer, security: str, said: str
) -> None:
    """Said as a TLS failure, with what to change, after the first connection: not retried as a
    connection problem, for a setting to fix."""
    result = send(faults, PAPERBOT_SMTP_SECURITY=security)
    assert result.exit_code == 1
    assert f"Stopped: SMTP TLS failed{said}" in result.output
    assert "connection failures in a row" not in result.output
    assert faults.handler.commands == {}, "no mail transaction was begun"
    assert STOPPED_SUMMARY in result.output, "as after a refused login"
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.suppressed() == {}
    (run,) = store.recent_runs()
    assert (run.summary["counts"]["failed"], run.summary["counts"]["released"]) == (0, 2)
    again = send(faults)
    assert again.exit_code == 0 and "sent 2" in again.output, "the next run sends both"


@pytest.fixture
def tls_first(certificate: tuple[Path, Path]) -> Iterator[FaultServer]:
    """A fault server that speaks TLS from the first byte, as servers do on port 465."""
    yield from serve(ssl_context=server_context(certificate))


@pytest.fixture
def starttls(certificate: tuple[Path, Path]) -> Iterator[FaultServer]:
    """A fault server that offers STARTTLS, with the ``certificate`` fixture's certificate."""
    yield from serve(tls_context=server_context(certificate))


def stopped_without_blaming_anyone(env: dict[str, str]) -> None:
    """The run is recorded stopped; no address was suppressed, no digest failed for good."""
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.recent_runs(1)[0].status == "stopped"
    assert store.suppressed() == {}
    assert all(state not in ("perm_failed", "sent") for _, state, _ in store.ledger.counts())


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_plain_smtp_to_a_port_that_expects_tls_stops_the_run_at_once(
    env: dict[str, str], tls_first: FaultServer, security: str
) -> None:
    """No greeting comes in plain text, and the port answers TLS: the security mode is wrong,
    said with what to set, at the first connection rather than after retrying it."""
    result = send(tls_first, PAPERBOT_SMTP_SECURITY=security, PAPERBOT_SMTP_TIMEOUT="0.5")
    assert result.exit_code == 1
    assert (
        "Stopped: SMTP TLS failed: the server sent no greeting in plain text within 0.5 s and "
        f"answers TLS instead: port {tls_first.port} expects TLS from the first byte: set "
        "PAPERBOT_SMTP_SECURITY=tls"
    ) in result.output
    assert "connection failures in a row" not in result.output
    stopped_without_blaming_anyone(env)


def test_a_server_that_never_greets_is_retried_as_connection_trouble(env: dict[str, str]) -> None:
    """A port that accepts and says nothing, not even TLS: the server may be too busy to greet,
    so connections are opened again until too many in a row failed."""
    with silent_proxy() as (url, _):
        port = url.rsplit(":", 1)[1]
        silent = FaultServer("127.0.0.1", int(port), None)  # type: ignore[arg-type]
        result = send(silent, PAPERBOT_SMTP_MAX_FAILURES="2", PAPERBOT_SMTP_TIMEOUT="0.3")
    assert result.exit_code == 1
    assert (
        "Stopped: 2 connection failures in a row, last: connection problem: no greeting within "
        "0.3 s (PAPERBOT_SMTP_TIMEOUT)"
    ) in result.output


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_a_login_to_a_server_that_offers_no_auth_stops_the_run_at_once(
    env: dict[str, str], starttls: FaultServer, certificate: tuple[Path, Path], security: str
) -> None:
    """A username is set and the server offers no AUTH (here even over STARTTLS): like a
    refused login, the run stops at the first connection and says what to change."""
    starttls.handler.offers_auth = False
    result = send(
        starttls, PAPERBOT_SMTP_SECURITY=security, SSL_CERT_FILE=str(certificate[0]),
        PAPERBOT_SMTP_USERNAME="u", PAPERBOT_SMTP_PASSWORD="p",
    )  # fmt: skip
    assert result.exit_code == 1
    assert starttls.handler.commands == {}, "no mail transaction was begun"
    assert "Stopped: SMTP authentication failed: the server offers no AUTH" in result.output
    assert "unset PAPERBOT_SMTP_USERNAME and PAPERBOT_SMTP_PASSWORD" in result.output
    assert "connection failures in a row" not in result.output
    stopped_without_blaming_anyone(env)


@pytest.mark.parametrize(
    ("fault", "extra"), [("drop", {}), ("sleep:1.5", {"PAPERBOT_SMTP_TIMEOUT": "0.4"})]
)
def test_a_drop_or_timeout_before_data_fails_that_message_for_now(
    env: dict[str, str], faults: FaultServer, fault: str, extra: dict[str, str]
) -> None:
    faults.handler.rcpt[ADA] = [fault, "250 OK"]
    first = send(faults, **extra)
    assert first.exit_code == 1 and "Stopped" not in first.output
    failed = row(env, ADA)
    assert (failed.status, failed.attempts) == ("temp_failed", 1)
    assert len(faults.handler.to(GRACE)) == 1
    again = send(faults, **extra)
    assert again.exit_code == 0, again.output
    assert len(faults.handler.to(ADA)) == 1 and row(env, ADA).status == "sent"


def test_a_recipient_always_dropped_before_data_holds_up_nobody_and_is_given_up(
    env: dict[str, str], faults: FaultServer
) -> None:
    """One poison recipient is one message failing for now, retried with backoff until the
    retries are given up; the run goes on without stopping, and the address stays usable."""
    faults.handler.rcpt[ADA] = ["drop"]
    before = datetime.now(UTC)
    first = send(faults, PAPERBOT_SMTP_MAX_FAILURES="2")
    assert first.exit_code == 1 and "Stopped" not in first.output, first.output
    failed = row(env, ADA)
    assert (failed.status, failed.attempts) == ("temp_failed", 1)
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at - before >= timedelta(minutes=4), "the retry policy's backoff"
    assert len(faults.handler.to(GRACE)) == 1
    last = send(faults, PAPERBOT_SMTP_MAX_FAILURES="2", PAPERBOT_RETRY_GIVE_UP_HOURS="0.00001")
    assert "Stopped" not in last.output and "gave up after 2 attempts" in last.output
    assert row(env, ADA).status == "perm_failed"
    assert Store(env["PAPERBOT_DATABASE_URL"]).suppressed() == {}


@pytest.mark.parametrize(
    ("fault", "said"),
    [("drop", "connection lost after the message data: connection closed"),
     ("sleep:1.2", "no reply within 0.4 s (PAPERBOT_SMTP_TIMEOUT) after the message data")],
)  # fmt: skip
def test_lost_after_data_stays_sending_and_is_resent_with_the_same_message_id(
    env: dict[str, str], faults: FaultServer, fault: str, said: str
) -> None:
    faults.handler.data[ADA] = [fault, "250 OK"]
    extra = {"PAPERBOT_SEND_LEASE_SECONDS": "1", "PAPERBOT_SMTP_TIMEOUT": "0.4"}
    first = send(faults, **extra)
    assert first.exit_code == 1 and f"unknown  {ADA} {said}; it will be sent" in first.output
    lost = row(env, ADA)
    assert (lost.status, lost.last_error) == ("sending", said)
    assert send(faults, **extra).exit_code == 0, "within the lease nobody touches the row"
    assert row(env, ADA).status == "sending"
    time.sleep(1.3)
    received = [m for m in faults.handler.received() if ADA in str(m["To"])]
    assert [str(m["Message-ID"]) for m in received] == [lost.message_id]
    resent = send(faults, **extra)
    assert resent.exit_code == 0, resent.output
    assert row(env, ADA).status == "sent"
    assert {str(m["Message-ID"]) for m in faults.handler.to(ADA)} == {lost.message_id}


def test_a_message_always_lost_after_data_is_sent_again_with_backoff(
    env: dict[str, str], faults: FaultServer
) -> None:
    """Sent again at once after its first lease (as after a crash), then only after the
    backoff: not at every lease."""
    faults.handler.data[ADA] = ["drop"]
    extra = {"PAPERBOT_SEND_LEASE_SECONDS": "1"}
    assert "unknown" in send(faults, **extra).output
    time.sleep(1.2)
    resent = send(faults, **extra)
    assert "unknown" in resent.output
    held = row(env, ADA)
    assert (held.status, held.attempts) == ("sending", 2)
    assert held.lease_until is not None
    assert held.lease_until - datetime.now(UTC) > timedelta(minutes=7), "10 minutes, +/- 20%"
    assert (held.last_error or "").startswith("connection lost after the message data")
    time.sleep(1.2)
    send(faults, **extra)
    received = [m for m in faults.handler.received() if ADA in str(m["To"])]
    assert [str(m["Message-ID"]) for m in received] == [held.message_id] * 2
    assert row(env, ADA).attempts == 2


def test_connection_refused_stops_after_several_in_a_row(env: dict[str, str]) -> None:
    nobody = FaultServer("127.0.0.1", free_port(), None)  # type: ignore[arg-type]
    result = send(nobody, PAPERBOT_SMTP_MAX_FAILURES="3")
    assert result.exit_code == 1
    assert "3 connection failures in a row" in result.output
    # the messages in hand did not fail: given back with the rest, for the next run
    assert STOPPED_SUMMARY in result.output
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert {state for _, state, _ in store.ledger.counts()} <= {"temp_failed", "skipped"}
    assert store.suppressed() == {}
    released = row(env, ADA)
    assert released.attempts == 0, "no data was sent: not an attempt"
    assert (released.last_error or "").startswith("not sent: 3 connection failures in a row")


@pytest.mark.parametrize("rate", [None, "1000"], ids=["unlimited", "rate limit"])
def test_a_send_stopped_by_smtp_trouble_counts_every_digest_it_did_not_send(
    env: dict[str, str], faults: FaultServer, tmp_path: Path, rate: str | None
) -> None:
    """The port is closed: the run stops long before it has claimed every digest. The summary
    and the run's record count those never claimed with those given back, leaving out the
    digests that would not have gone anyway (nothing matched, no note wanted). Under a rate
    limit the run claims one at a time, out of the first jobs it took: none of those is lost
    from the count either. (More digests would go than a run claims ahead of its senders,
    however quickly it claims: a batch being claimed, and the parts the compose pool is given
    or hands over, as many as its workers, one per CPU, keep busy.)"""
    going = BATCH + (2 * worker_count() + 3) * PER_TASK + 100
    lines = ["subscribers:"]
    for n in range(2 * going):  # half of them want a "nothing matched" note
        lines += [f"  - email: {reader(n)}", f"    send_empty: {str(n % 2 == 0).lower()}"]
        lines += UNMATCHED
    crowd = tmp_path / "crowd.yaml"
    crowd.write_text("\n".join(lines) + "\n")
    nobody = FaultServer("127.0.0.1", free_port(), None)  # type: ignore[arg-type]
    limit = {"PAPERBOT_SMTP_RATE_PER_SECOND": rate} if rate else {}
    result = send(nobody, PAPERBOT_PROFILES=str(crowd), PAPERBOT_SMTP_MAX_FAILURES="3", **limit)
    assert result.exit_code == 1
    summary = re.search(
        r"sent 0, skipped (\d+), failed (\d+), already done 0, not sent (\d+) ", result.output
    )
    assert summary is not None, result.output
    skipped, failed, not_sent = map(int, summary.groups())
    assert (failed, not_sent) == (0, going), "every digest that would have gone is counted"
    assert 0 < skipped < going, "the run stopped before reaching every digest"
    store = Store(env["PAPERBOT_DATABASE_URL"])
    (run,) = store.recent_runs()
    counts = run.summary["counts"]
    assert (counts["failed"], counts["released"] + counts["unclaimed"]) == (failed, not_sent)
    assert counts["unclaimed"] > 0
    shown = runner.invoke(app, ["status"], env={"COLUMNS": "300"}).output
    line = next(line for line in shown.splitlines() if "│ send " in line)
    assert f" not sent {going} " in line and "failed 0" not in line, (
        "one figure: the next run sends all"
    )
    assert "released" not in shown and "unclaimed" not in shown
    again = send(faults, PAPERBOT_PROFILES=str(crowd))
    assert again.exit_code == 0, again.output
    assert len(faults.handler.accepted) == going
    assert {state: n for _, state, n in store.ledger.counts()} == {"sent": going, "skipped": going}


def test_retries_are_given_up_after_the_configured_time(
    env: dict[str, str], faults: FaultServer
) -> None:
    faults.handler.rcpt[ADA] = ["451 4.3.0 try later"]
    result = send(faults, PAPERBOT_RETRY_GIVE_UP_HOURS="0.00001")
    assert "gave up after 1 attempts" in result.output
    assert row(env, ADA).status == "perm_failed"
