"""The delivery engine's parts: backoff, pacing, group commits, and ``deliver`` on real parts."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.collector import YOUNG
from bot.composer import ComposePool, Draft, compose_draft
from bot.delivery import POOL_MIN, UNRECORDED, DeliveryOptions, Job, deliver
from bot.errors import (
    ConnectionDeliveryError,
    DroppedDeliveryError,
    PermanentDeliveryError,
    RecipientDeliveryError,
)
from bot.mailer import SmtpMailer
from bot.message import Envelope, Outgoing, build_message
from bot.models import Digest, Interests, Subscriber
from bot.pacing import GroupCommit, RateLimiter
from bot.pipeline import Deps
from bot.refusals import REFUSALS_IN_ROW
from bot.render import EmailContext, Renderer
from bot.retry import RetryPolicy
from bot.settings import load_settings
from bot.smtp import data_payload
from bot.sources import FetchReport
from bot.store import Claim, Store
from tests.conftest import free_port
from tests.smtp_faults import FaultServer

DAY = date(2026, 11, 25)
T0 = datetime(2026, 11, 25, 8, tzinfo=UTC)


def test_backoff_doubles_from_5_minutes_to_6_hours_with_jitter() -> None:
    policy = RetryPolicy()
    middle = [policy.delay(n, lambda: 0.5) for n in range(1, 10)]
    assert [d.total_seconds() / 60 for d in middle] == [5, 10, 20, 40, 80, 160, 320, 360, 360]
    assert policy.delay(1, lambda: 0.0) == timedelta(minutes=4)
    assert policy.delay(1, lambda: 0.999999) < timedelta(minutes=6)
    assert policy.delay(50, lambda: 0.999) == timedelta(hours=6), "never past the maximum"


def test_backoff_gives_up_after_3_days() -> None:
    policy = RetryPolicy()
    assert policy.next_attempt(3, T0, T0 + timedelta(hours=1), lambda: 0.5) is not None
    assert policy.next_attempt(20, T0, T0 + timedelta(days=3), lambda: 0.5) is None
    # an attempt falling at the give-up time itself is still made; one a second later is not
    steady = RetryPolicy(jitter=0)
    last_wait = T0 + timedelta(days=3) - timedelta(hours=6)
    assert steady.next_attempt(20, T0, last_wait, lambda: 0.5) == T0 + timedelta(days=3)
    assert steady.next_attempt(20, T0, last_wait + timedelta(seconds=1), lambda: 0.5) is None
    with pytest.raises(ValueError):
        RetryPolicy(first=timedelta(hours=7))


def test_backoff_makes_so_many_attempts_before_it_gives_up() -> None:
    """5, 10, 20, 40, 80, 160 and 320 minutes, then every 6 hours: 18 attempts in 3 days."""
    assert RetryPolicy().most_attempts() == 18
    second = timedelta(seconds=1)
    assert RetryPolicy(first=second, maximum=second, give_up=3 * second).most_attempts() == 4
    assert RetryPolicy(first=second, give_up=2 * second).most_attempts() == 2
    for maximum in (2 * second, 4 * second):  # giving up before the first wait is over
        policy = RetryPolicy(first=2 * second, maximum=maximum, give_up=second)
        assert policy.most_attempts() == 2, "a message resumed after a crash is sent again"


def test_dots_and_line_ends_in_the_data_payload() -> None:
    assert data_payload(b".start\r\nmid\r\n.dot\r\n") == b"..start\r\nmid\r\n..dot\r\n.\r\n"
    assert data_payload(b"bare\nlf") == b"bare\r\nlf\r\n.\r\n"
    assert data_payload(b"lone\rcr\r\n") == b"lone\r\ncr\r\n.\r\n"
    assert data_payload(b"clean\r\n") == b"clean\r\n.\r\n"
    # said to be transparent: only the end mark is added, unless the ends show otherwise
    assert data_payload(b"a\r\nb\r\n", transparent=True) == b"a\r\nb\r\n.\r\n"
    assert data_payload(b".a\r\n", transparent=True) == b"..a\r\n.\r\n"
    assert data_payload(b"a\r\nb", transparent=True) == b"a\r\nb\r\n.\r\n"


async def test_rate_limiter_spaces_messages_and_caps_the_hour() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    limiter = RateLimiter(per_second=4, per_hour=6, clock=lambda: now[0], sleep=sleep)
    for _ in range(7):
        await limiter.wait()
    assert waits[:5] == [0.25] * 5
    assert waits[5] == pytest.approx(3600 - 1.25, abs=0.01), "the 7th waits for the hour"
    assert not RateLimiter().active


async def test_group_commit_batches_concurrent_writes() -> None:
    batches: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(lambda items: batches.append(list(items)), 64)
    await asyncio.gather(*(commit.add(n) for n in range(10)))
    assert sorted(n for b in batches for n in b) == list(range(10))
    assert len(batches) < 10


async def test_group_commit_lingers_for_a_fuller_batch_but_drains_at_once() -> None:
    batches: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(
        lambda items: batches.append(list(items)), 8, batch=4, linger=30.0
    )

    def written(item: int, error: Exception | None) -> None:
        assert error is None

    for n in range(6):
        await commit.submit(n, written)
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert batches == [[0, 1, 2, 3]], "a full batch goes at once; the rest waits for more"
    start = asyncio.get_running_loop().time()
    await commit.drain()
    assert batches == [[0, 1, 2, 3], [4, 5]]
    assert asyncio.get_running_loop().time() - start < 5, "draining does not linger"


async def test_group_commit_abandoned_answers_for_nothing_it_was_writing() -> None:
    """Items abandoned while their write is under way are handed back, and the write that
    ends afterwards calls none of their callbacks: the caller that took them records them."""
    started, finish = threading.Event(), threading.Event()
    written: list[list[int]] = []
    told: list[int] = []

    def write(items: Sequence[int]) -> None:
        started.set()
        finish.wait(5)
        written.append(list(items))

    commit: GroupCommit[int] = GroupCommit(write, 8)
    for n in range(3):
        await commit.submit(n, lambda item, error: told.append(item))
    await asyncio.to_thread(started.wait, 5)
    assert sorted(commit.abandon()) == [0, 1, 2]
    finish.set()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if written:
            break
    await asyncio.sleep(0.05)
    assert written == [[0, 1, 2]], "the write under way ends in its thread"
    assert told == [], "no callback: the items were handed back"


def make_deps(tmp_path: Path, server: FaultServer, connections: int = 4) -> Deps:
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'e.db'}")

    async def no_fetch(day: date) -> FetchReport:
        return FetchReport()

    mailer = SmtpMailer(server.host, server.port, security="none", connections=connections)
    return Deps(settings, Store(settings.database_url), Renderer(), no_fetch, lambda: T0, mailer)


def jobs_for(deps: Deps, emails: list[str], kind: str = "digest") -> list[Job]:
    subs = [Subscriber(email=e, interests=Interests(keywords=["x"])) for e in emails]
    ids = deps.store.sync_subscribers(subs).ids

    def composer(email: str) -> object:
        def compose(claim: Claim) -> Outgoing:
            sender, to = Address(addr_spec="bot@example.org"), Address(addr_spec=email)
            envelope = Envelope(sender, to, claim.message_id, T0)
            return build_message(envelope, "hello", ".a line starting with a dot\n")

        return compose

    ref = "2611.00001" if kind == "alert" else ""
    return [Job(ids[e], e, DAY, composer(e), ("p1",), kind, ref) for e in emails]  # type: ignore[arg-type]


async def test_the_collector_is_quiet_while_a_delivery_lasts(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults)
    before, seen = gc.get_threshold(), []

    def watched(job: Job) -> Job:
        def compose(claim: Claim) -> Outgoing:
            seen.append(gc.get_threshold()[0])
            return job.compose(claim)

        return replace(job, compose=compose)

    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, map(watched, jobs_for(deps, ["ada@example.org"])))
    assert [o.status for o in report.outcomes] == ["sent"]
    assert seen == [YOUNG]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_deliver_uses_n_reused_connections_and_resets_after_a_refusal(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults, connections=4)
    emails = [f"user{n}@example.org" for n in range(40)]
    faults.handler.rcpt["user3@example.org"] = ["550 5.1.1 unknown"]
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs_for(deps, emails))
    statuses = [o.status for o in report.outcomes]
    assert statuses.count("sent") == 39 and statuses.count("failed") == 1
    assert len(faults.handler.accepted) == 39
    assert faults.handler.commands["MAIL"] == 40
    assert faults.handler.accepted[0].get_content().startswith(".a line")
    assert 2 <= len(faults.handler.peers) <= 4, "a few connections, each reused"


async def test_alert_jobs_are_keyed_by_kind_and_ref(tmp_path: Path, faults: FaultServer) -> None:
    deps = make_deps(tmp_path, faults)
    async with deps.mailer:  # type: ignore[union-attr]
        first = await deliver(deps, jobs_for(deps, ["ada@example.org"], kind="alert"))
        again = await deliver(deps, jobs_for(deps, ["ada@example.org"], kind="alert"))
    assert [o.status for o in first.outcomes] == ["sent"]
    assert [(o.status, o.kind, o.ref) for o in again.outcomes] == [
        ("already", "alert", "2611.00001")
    ]
    assert deps.store.ledger.tally() == [(DAY, "alert", "sent", 1)]


async def test_suppression_is_checked_again_right_before_sending(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults)
    jobs = jobs_for(deps, ["ada@example.org", "bob@example.org"])
    deps.store.suppress("bob@example.org", "unsubscribed")
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs, DeliveryOptions(retry_now=True))
    assert sorted((o.email, o.status) for o in report.outcomes) == [
        ("ada@example.org", "sent"),
        ("bob@example.org", "skipped"),
    ]
    bob = deps.store.ledger.get(jobs[1].subscriber_id, DAY)
    assert bob is not None and (bob.status, bob.last_error) == ("skipped", "suppressed")
    assert [str(m["To"]) for m in faults.handler.accepted] == ["ada@example.org"]


async def test_an_address_unsubscribed_during_a_run_gets_nothing_more(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Bob unsubscribes while Ada's message is being sent (its data stalls at the server for
    longer than the suppression list is trusted): his message, queued already, is not sent."""
    deps = make_deps(tmp_path, faults, connections=1)
    jobs = jobs_for(deps, ["ada@example.org", "bob@example.org"])
    faults.handler.data["ada@example.org"] = ["sleep:1.5"]

    async def unsubscribe_bob_while_ada_is_sent() -> None:
        while not faults.handler.dropped:  # Ada's data is at the server, not yet accepted
            await asyncio.sleep(0.01)
        await asyncio.to_thread(deps.store.suppress, "bob@example.org", "unsubscribed", T0)

    async with deps.mailer:  # type: ignore[union-attr]
        unsubscribing = asyncio.create_task(unsubscribe_bob_while_ada_is_sent())
        report = await deliver(deps, jobs)
        await unsubscribing
    assert sorted((o.email, o.status) for o in report.outcomes) == [
        ("ada@example.org", "sent"),
        ("bob@example.org", "skipped"),
    ]
    assert [str(m["To"]) for m in faults.handler.accepted] == ["ada@example.org"]


async def test_retries_are_given_up_counting_from_the_first_attempt(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Each wait is short, but three days after the first attempt the message is given up:
    the give-up time counts from the first attempt, not from the latest."""
    deps = make_deps(tmp_path, faults, connections=1)
    faults.handler.rcpt["ada@example.org"] = ["451 4.3.0 try later"]
    jobs = jobs_for(deps, ["ada@example.org"])
    async with deps.mailer:  # type: ignore[union-attr]
        first = await deliver(deps, jobs)
        late = replace(deps, clock=lambda: T0 + timedelta(days=3, minutes=-1))
        last = await deliver(late, jobs, DeliveryOptions(retry_now=True))
    assert [o.status for o in first.outcomes + last.outcomes] == ["failed", "failed"]
    assert last.outcomes[0].detail.startswith("gave up after 2 attempts")
    row = deps.store.ledger.get(jobs[0].subscriber_id, DAY)
    assert row is not None and (row.status, row.attempts) == ("perm_failed", 2)


def drafted_jobs(deps: Deps, emails: list[str]) -> list[Job]:
    """Jobs that can also be composed in worker processes (an empty digest each)."""
    subs = {e: Subscriber(email=e, interests=Interests(keywords=["x"])) for e in emails}
    ids = deps.store.sync_subscribers(list(subs.values())).ids

    def drafter(email: str) -> Callable[[Claim], Draft]:
        def draft(claim: Claim) -> Draft:
            envelope = Envelope(
                Address(addr_spec="bot@example.org"), Address(addr_spec=email), claim.message_id, T0
            )
            return Draft(Digest(subs[email], DAY, (), (), "empty"), EmailContext("bot"), envelope)

        return draft

    def job(email: str) -> Job:
        draft = drafter(email)
        compose = lambda claim: compose_draft(deps.renderer, draft(claim))  # noqa: E731
        return Job(ids[email], email, DAY, compose, (), draft=draft)

    return [job(e) for e in emails]


async def test_a_large_run_composes_in_worker_processes(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults)
    emails = [f"user{n}@example.org" for n in range(POOL_MIN + 10)]
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, drafted_jobs(deps, emails))
    assert [o.status for o in report.outcomes] == ["sent"] * len(emails)
    received = {str(m["To"]): str(m["Message-ID"]) for m in faults.handler.accepted}
    assert set(received) == set(emails)
    for job in drafted_jobs(deps, emails[:3]):
        row = deps.store.ledger.get(job.subscriber_id, DAY)
        assert row is not None and row.status == "sent"
        assert received[job.email] == row.message_id, "the ledger names the message sent"


async def test_workers_that_cannot_start_leave_composing_to_this_process(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults)
    deps.renderer.templates_dir = tmp_path / "missing"  # workers fail to build their renderer
    emails = [f"user{n}@example.org" for n in range(POOL_MIN * 2)]
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, drafted_jobs(deps, emails))
    assert [o.status for o in report.outcomes] == ["sent"] * len(emails)
    assert len(faults.handler.accepted) == len(emails)


async def test_a_fork_server_that_ends_while_starting_workers_leaves_composing_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop signal to the whole process group (as service managers send it) also ends the
    fork server; starting a worker then meets the end of its socket."""

    def ended(fd: int) -> int:
        raise EOFError("unexpected EOF")

    pool = ComposePool.start(Path("templates"))
    assert pool is not None
    monkeypatch.setattr(forkserver, "read_signed", ended)
    try:
        await asyncio.to_thread(pool.warm_up)
        assert not pool.ready
    finally:
        await pool.close()


async def test_workers_compose_what_this_process_would(tmp_path: Path, faults: FaultServer) -> None:
    deps = make_deps(tmp_path, faults)
    jobs = drafted_jobs(deps, ["ada@example.org", "bob@example.org"])
    claims = [
        Claim(n, job.subscriber_id, f"<m{n}@example.org>", (), 1, False)
        for n, job in enumerate(jobs)
    ]
    drafts = [job.draft(claim) for job, claim in zip(jobs, claims, strict=True)]  # type: ignore[misc]
    pool = ComposePool.start(deps.renderer.templates_dir)
    assert pool is not None and not pool.ready, "not ready before the workers are started"
    try:
        await asyncio.to_thread(pool.warm_up)
        while not pool.ready:
            await asyncio.sleep(0.01)
        composed = await pool.compose(drafts)
    finally:
        await pool.close()
    local = [compose_draft(deps.renderer, draft) for draft in drafts]

    def same(m: Outgoing) -> Outgoing:  # each message has its own random MIME boundary
        return replace(m, data=re.sub(rb"=_[0-9a-f]{32}", b"=_boundary", m.data))

    assert [same(m) for m in composed] == [same(m) for m in local]  # type: ignore[arg-type]


MAIN_SCRIPT = """
import sys, time
from pathlib import Path
from typing import Any
with open(sys.argv[1], "a") as runs:
    print(__name__, file=runs)
if __name__ == "__main__":
    from bot.composer import ComposePool
    pool = ComposePool.start(Path("templates"))
    spec = __spec__
    pool.warm_up()
    while not pool.ready:
        time.sleep(0.01)
    assert __spec__ is spec, "the main module is left as it was"
"""


def test_workers_do_not_run_the_main_module_again(tmp_path: Path) -> None:
    """Each worker would otherwise run the command line's imports again: a second of CPU."""
    script, runs = tmp_path / "main.py", tmp_path / "runs.txt"
    script.write_text(MAIN_SCRIPT)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(script), str(runs)], cwd=root, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert runs.read_text().split() == ["__main__"]


async def test_stopping_a_large_run_releases_every_message_not_sent(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults, connections=1)
    deps = replace(deps, on_outcome=lambda outcome: deps.stop.set())  # stop once one is recorded
    emails = [f"user{n}@example.org" for n in range(POOL_MIN * 3)]
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, drafted_jobs(deps, emails))
    sent = [o for o in report.outcomes if o.status == "sent"]
    assert report.stopped == "shutting down" and report.released > 0
    assert len(sent) == len(faults.handler.accepted) < len(emails)
    states = {state: n for _, state, n in deps.store.ledger.counts()}
    assert states.get("sending", 0) == 0, "nothing is left claimed"
    assert states == {"sent": len(sent), "temp_failed": report.released}


async def test_a_run_stopped_by_connection_trouble_releases_each_claimed_row_once(
    tmp_path: Path,
) -> None:
    """Each claimed row, the messages in hand too, is released once and counted once: none of
    them failed, every one is due again saying why, with no attempt counted (no data was
    sent)."""
    nobody = FaultServer("127.0.0.1", free_port(), None)  # type: ignore[arg-type]
    deps = make_deps(tmp_path, nobody, connections=4)
    deps = replace(deps, settings=deps.settings.model_copy(update={"smtp_max_failures": 3}))
    jobs = jobs_for(deps, [f"user{n}@example.org" for n in range(10)])
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert isinstance(report.stopped_by, ConnectionDeliveryError)
    assert report.stopped is not None and report.stopped.startswith("3 connection failures")
    assert report.outcomes == [], "no message failed: the server never had one"
    why = f"not sent: {report.stopped}"
    rows = {job.email: deps.store.ledger.get(job.subscriber_id, DAY) for job in jobs}
    claimed = {email: row for email, row in rows.items() if row is not None}
    assert 0 < report.released == len(claimed)
    assert {(r.status, r.attempts, r.last_error) for r in claimed.values()} == {
        ("temp_failed", 0, why)
    }


async def test_once_the_run_stops_no_sender_opens_another_connection(tmp_path: Path) -> None:
    """Senders waiting to try again when the failures add up wake and give up: no connection
    after the stop (nor a wait of up to 5 s for the run to end)."""
    attempts: list[float] = []
    with socket.socket() as listener:  # accepts, then hangs up before any greeting
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)

        async def hang_up() -> None:
            loop = asyncio.get_running_loop()
            while True:
                conn, _ = await loop.sock_accept(listener)
                attempts.append(loop.time())
                conn.close()

        server = FaultServer("127.0.0.1", listener.getsockname()[1], None)  # type: ignore[arg-type]
        deps = make_deps(tmp_path, server, connections=4)
        deps = replace(deps, settings=deps.settings.model_copy(update={"smtp_max_failures": 6}))
        jobs = jobs_for(deps, [f"user{n}@example.org" for n in range(8)])
        accepting = asyncio.create_task(hang_up())
        try:
            async with deps.mailer:  # type: ignore[union-attr]
                report = await deliver(deps, jobs)
        finally:
            accepting.cancel()
    assert report.stopped is not None and report.stopped.startswith("6 connection failures")
    assert len(attempts) == 6


async def test_a_sent_message_the_ledger_cannot_record_stops_the_run(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Sending on would only add messages that arrive twice after their lease: the run stops,
    the unrecorded ones are reported as unknown and stay ``sending`` until this process can
    record them sent (the server accepted them), the rest are released."""
    deps = make_deps(tmp_path, faults, connections=1)
    ledger = deps.store.ledger

    def cannot_record(*args: object, **kwargs: object) -> None:
        raise OperationalError("UPDATE", {}, Exception("disk I/O error\nmore detail"))

    ledger.mark_sent_many = cannot_record  # type: ignore[method-assign]
    emails = [f"user{n}@example.org" for n in range(100)]
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs_for(deps, emails))
    assert report.stopped == "the ledger could not record sent messages: disk I/O error"
    unknown = [o for o in report.outcomes if o.status == "unknown"]
    assert 0 < len(unknown) == len(faults.handler.accepted) < len(emails)
    assert {o.detail for o in unknown} == {
        "sent, but the ledger could not record it: disk I/O error"
    }
    states = {state: n for _, state, n in ledger.counts()}
    assert states.get("sending") == len(unknown) and states.get("sent", 0) == 0
    del ledger.mark_sent_many  # the database works again: this process records them sent
    assert ledger.settle_owed(T0) == (0, len(unknown))
    assert {state: n for _, state, n in ledger.counts()}.get("sent") == len(unknown)


async def test_when_claiming_fails_nothing_more_is_sent(
    tmp_path: Path, faults: FaultServer
) -> None:
    deps = make_deps(tmp_path, faults, connections=2)
    ledger, claim_many = deps.store.ledger, deps.store.ledger.claim_many
    calls: list[int] = []

    def claims_then_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(faults.handler.accepted))
        if len(calls) > 1:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return claim_many(*args, **kwargs)

    ledger.claim_many = claims_then_fails  # type: ignore[method-assign]
    emails = [f"user{n}@example.org" for n in range(200)]
    faults.handler.data.update({email: ["sleep:0.02"] for email in emails})  # a queue builds up
    async with deps.mailer:  # type: ignore[union-attr]
        with pytest.raises(OperationalError):
            await deliver(deps, jobs_for(deps, emails))
    assert len(faults.handler.accepted) - calls[1] <= 2, "at most the messages in flight"


def claims_once_then(deps: Deps, error: Exception) -> None:
    """The ledger's second claim (and every later one) raises ``error``."""
    ledger, claim_many = deps.store.ledger, deps.store.ledger.claim_many
    calls = [0]

    def claim_or_fail(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > 1:
            raise error
        return claim_many(*args, **kwargs)

    ledger.claim_many = claim_or_fail  # type: ignore[method-assign]


async def test_a_run_ended_by_an_error_releases_what_no_sender_handed_to_the_server(
    tmp_path: Path, faults: FaultServer
) -> None:
    """The database still works: the claimed messages not yet sent are due again at once, not
    left ``sending`` until their lease runs out; those in flight finish and are recorded."""
    deps = make_deps(tmp_path, faults, connections=2)
    claims_once_then(
        deps, OperationalError("INSERT", {}, Exception("server closed the connection"))
    )
    emails = [f"user{n}@example.org" for n in range(100)]
    faults.handler.data.update({email: ["sleep:0.05"] for email in emails})  # a queue builds up
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        with pytest.raises(OperationalError):
            await deliver(deps, jobs)
    rows = [deps.store.ledger.get(job.subscriber_id, DAY) for job in jobs]
    claimed = [row for row in rows if row is not None]
    sent = [row for row in claimed if row.status == "sent"]
    released = [row for row in claimed if row.status != "sent"]
    assert len(claimed) == 64 and len(sent) == len(faults.handler.accepted)
    assert released, "the queued messages were not sent"
    why = "not sent: the run ended with a database error: server closed the connection"
    assert {(r.status, r.attempts, r.last_error) for r in released} == {("temp_failed", 0, why)}
    assert all(r.retry_due(T0) for r in released), "due again at once"


async def test_a_release_the_database_refuses_does_not_hide_the_error_that_ended_the_run(
    tmp_path: Path, faults: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    deps = make_deps(tmp_path, faults, connections=2)
    claims_once_then(deps, RuntimeError("a bug"))
    ledger = deps.store.ledger

    def cannot_release(*args: object) -> bool:
        raise OperationalError("UPDATE", {}, Exception("disk I/O error"))

    ledger.release = cannot_release  # type: ignore[method-assign]
    emails = [f"user{n}@example.org" for n in range(100)]
    faults.handler.data.update({email: ["sleep:0.05"] for email in emails})
    async with deps.mailer:  # type: ignore[union-attr]
        with pytest.raises(RuntimeError, match="a bug"):
            await deliver(deps, jobs_for(deps, emails))
    states = {state: n for _, state, n in ledger.counts()}
    assert states == {"sent": len(faults.handler.accepted), "sending": 64 - states["sent"]}
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (
        f"left 'sending': {states['sending']} claimed messages; releasing them failed: disk I/O "
        "error (this process gives them back once the database works again: a worker at its "
        "next sweep, a command before it exits; otherwise they are sent again as after a crash)"
    )
    del ledger.release  # the database works again: this process gives them back
    assert ledger.settle_owed(T0) == (states["sending"], 0)
    assert {state for _, state, _ in ledger.counts()} == {"sent", "temp_failed"}


def ledger_rows(deps: Deps, jobs: list[Job]) -> list[Any]:
    rows = [deps.store.ledger.get(job.subscriber_id, DAY) for job in jobs]
    return [row for row in rows if row is not None]


MAILBOX = "550 5.1.1 no such user"


def spread(count: int) -> list[str]:
    """``count`` addresses over 3 domains, as a list of subscribers is."""
    return [f"user{n}@example{n % 3}.org" for n in range(count)]


@pytest.mark.parametrize(
    ("command", "refusal", "kind"),
    [
        ("DATA", "554 5.7.1 Message rejected: spam content", PermanentDeliveryError),
        ("RCPT", "550 5.1.1 no such user", RecipientDeliveryError),
    ],
    ids=["message", "mailbox"],
)
async def test_the_same_refusal_message_after_message_stops_the_run(
    tmp_path: Path, faults: FaultServer, command: str, refusal: str, kind: type[Exception]
) -> None:
    """A server refusing every message (spam, a policy) or every recipient's mailbox (a relay
    that serves other domains only) stops the run like a refused login: the server is at
    fault, not the messages nor the addresses. Nobody is suppressed, and the refused ones are
    given back unsent with the rest, none of them counted as an attempt."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = spread(20)
    getattr(faults.handler, command.lower()).update({email: [refusal] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert isinstance(report.stopped_by, kind)
    assert report.stopped == (
        f"{REFUSALS_IN_ROW} messages in a row refused the same way, last: refused: {refusal}"
    )
    assert faults.handler.commands[command] == REFUSALS_IN_ROW
    assert deps.store.suppressed() == {}
    rows = ledger_rows(deps, jobs)
    assert report.outcomes == [] and report.released == len(rows) == len(emails)
    assert {(r.status, r.attempts, r.last_error) for r in rows} == {
        ("temp_failed", 0, f"not sent: {report.stopped}")
    }


async def test_a_server_refusing_every_message_fails_none_of_them_run_after_run(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Each run stops at the same refusals; the messages wait for the next one, unfailed."""
    deps = make_deps(tmp_path, faults, connections=2)
    emails = [f"user{n}@example.org" for n in range(4 * REFUSALS_IN_ROW)]
    faults.handler.data.update({email: ["550 5.7.1 relaying denied"] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        for run in range(2):
            report = await deliver(deps, jobs)
            assert report.stopped is not None, f"run {run}"
            assert report.stopped.startswith(f"{REFUSALS_IN_ROW} messages in a row refused")
    assert faults.handler.commands["DATA"] >= 2 * REFUSALS_IN_ROW
    assert deps.store.suppressed() == {}
    assert {(r.status, r.attempts) for r in ledger_rows(deps, jobs)} == {("temp_failed", 0)}


async def test_refusals_that_another_outcome_ends_fail_for_good(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Fewer refusals in a row than stop the run are refusals of those messages."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = [f"user{n}@example.org" for n in range(REFUSALS_IN_ROW + 1)]
    refusal = "554 5.7.1 Message rejected: spam content"
    faults.handler.data.update({email: [refusal] for email in emails[: REFUSALS_IN_ROW - 1]})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is None
    failed = [(o.status, o.detail, o.code) for o in report.outcomes if o.status == "failed"]
    assert failed == [("failed", f"refused: {refusal}", 554)] * (REFUSALS_IN_ROW - 1)
    states = [(r.status, r.attempts, r.last_code) for r in ledger_rows(deps, jobs)]
    assert states == [("perm_failed", 1, 554)] * (REFUSALS_IN_ROW - 1) + [("sent", 1, None)] * 2
    assert deps.store.suppressed() == {}


async def test_a_small_run_the_server_refuses_entirely_is_retried_not_failed_for_good(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Too few messages to stop the run, all refused the same way: as likely the server's
    doing as theirs, so they are retried with backoff (and given up in time), not lost today."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = [f"user{n}@example.org" for n in range(REFUSALS_IN_ROW - 2)]
    refusal = "554 5.7.1 Message rejected: spam content"
    faults.handler.data.update({email: [refusal] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is None
    assert {o.detail for o in report.outcomes} == {
        f"refused: {refusal}; every message of the run was refused so: tried again later"
    }
    rows = ledger_rows(deps, jobs)
    assert [(r.status, r.attempts, r.last_code) for r in rows] == [("temp_failed", 1, 554)] * 3
    assert all(r.next_attempt_at is not None for r in rows)
    assert deps.store.suppressed() == {}


async def test_refused_mailboxes_and_different_refusals_do_not_stop_the_run(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Refusals in a row that differ (another mailbox reply, another content refusal) are
    each that message's: the mailboxes are suppressed, the messages fail for good."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = [f"user{n}@example.org" for n in range(4 * REFUSALS_IN_ROW)]
    for n, email in enumerate(emails):
        faults.handler.rcpt[email] = ["550 5.1.1 no such user" if n % 2 else "550 5.2.1 disabled"]
        faults.handler.data[email] = ["554 5.7.1 spam" if n % 2 else "554 5.6.0 too big"]
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        unknown = await deliver(deps, jobs[: 2 * REFUSALS_IN_ROW])
        for email in emails:
            del faults.handler.rcpt[email]
        different = await deliver(deps, jobs[2 * REFUSALS_IN_ROW :])
    assert (unknown.stopped, different.stopped) == (None, None)
    assert set(deps.store.suppressed()) == set(emails[: 2 * REFUSALS_IN_ROW])
    assert {r.status for r in ledger_rows(deps, jobs)} == {"perm_failed"}


async def test_mailboxes_refused_among_several_senders_stop_the_run_and_suppress_nobody(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Refusals settled by several connections at once count in the order they come; those
    settled after the run stopped are given back with the rest."""
    deps = make_deps(tmp_path, faults, connections=4)
    emails = spread(4 * REFUSALS_IN_ROW)
    faults.handler.rcpt.update({email: ["550 5.1.1 unknown"] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is not None
    assert report.stopped.startswith(f"{REFUSALS_IN_ROW} messages in a row refused")
    assert deps.store.suppressed() == {}
    assert {(r.status, r.attempts) for r in ledger_rows(deps, jobs)} == {("temp_failed", 0)}


async def test_dead_mailboxes_among_accepted_ones_are_still_suppressed(
    tmp_path: Path, faults: FaultServer
) -> None:
    """A few refused mailboxes between accepted messages, some of them in a row (fewer than
    stop the run), one the last of the run: each fails for good and is suppressed."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = [f"user{n}@example.org" for n in range(3 * REFUSALS_IN_ROW)]
    dead = [emails[1], *emails[4 : 4 + REFUSALS_IN_ROW - 1], emails[-1]]
    faults.handler.rcpt.update({email: [MAILBOX] for email in dead})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is None and report.refused_all is None
    failed = [(o.email, o.detail, o.code) for o in report.outcomes if o.status == "failed"]
    suppressed = f"refused: {MAILBOX} (address suppressed)"
    assert sorted(failed) == sorted((email, suppressed, 550) for email in dead)
    assert set(deps.store.suppressed()) == set(dead)
    states = {r.subscriber_id: (r.status, r.attempts, r.last_code) for r in ledger_rows(deps, jobs)}
    for job in jobs:
        expected = ("perm_failed", 1, 550) if job.email in dead else ("sent", 1, None)
        assert states[job.subscriber_id] == expected, job.email


async def test_a_small_run_whose_every_mailbox_is_refused_is_retried_not_suppressed(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Too few messages to stop the run, every mailbox refused the same way: as likely the
    server's doing as the addresses', so they are retried with backoff, nobody suppressed."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = spread(REFUSALS_IN_ROW - 2)
    faults.handler.rcpt.update({email: [MAILBOX] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is None
    assert isinstance(report.refused_all, RecipientDeliveryError)
    assert {o.detail for o in report.outcomes} == {
        f"refused: {MAILBOX}; every message of the run was refused so: tried again later"
    }
    rows = ledger_rows(deps, jobs)
    assert [(r.status, r.attempts, r.last_code) for r in rows] == [("temp_failed", 1, 550)] * 3
    assert deps.store.suppressed() == {}


@pytest.mark.parametrize("dead", [1, 3], ids=["one message", "one domain"])
async def test_a_small_run_of_dead_mailboxes_of_one_domain_suppresses_them(
    tmp_path: Path, faults: FaultServer, dead: int
) -> None:
    """A lone message, or a few to addresses of one domain, all refused as unknown mailboxes:
    most likely dead addresses (a worker sends each subscriber at their own time), so they fail
    for good and are suppressed, as among accepted ones."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = [f"gone{n}@example.org" for n in range(dead)]
    faults.handler.rcpt.update({email: [MAILBOX] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is None and report.refused_all is None
    suppressed = f"refused: {MAILBOX} (address suppressed)"
    assert {(o.status, o.detail) for o in report.outcomes} == {("failed", suppressed)}
    assert set(deps.store.suppressed()) == set(emails)
    assert {(r.status, r.attempts) for r in ledger_rows(deps, jobs)} == {("perm_failed", 1)}


async def test_a_row_of_dead_mailboxes_of_one_domain_does_not_stop_the_run(
    tmp_path: Path, faults: FaultServer
) -> None:
    """The addresses of a domain that is gone, listed together: more refused in a row than stop
    a run, but of one domain, so they are dead addresses: suppressed, and the others sent."""
    deps = make_deps(tmp_path, faults, connections=1)
    emails = spread(4) + [f"gone{n}@old.example.org" for n in range(2 * REFUSALS_IN_ROW)]
    emails += spread(8)[4:]
    dead = [email for email in emails if email.endswith("@old.example.org")]
    faults.handler.rcpt.update({email: [MAILBOX] for email in dead})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert report.stopped is None
    assert set(deps.store.suppressed()) == set(dead)
    assert len(faults.handler.received()) == len(emails) - len(dead)


async def test_a_server_that_drops_every_message_stops_the_run(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Connections open, but each is lost during its message: the run stops after
    ``smtp_max_failures`` messages in a row, each failed for now with its attempt counted."""
    deps = make_deps(tmp_path, faults, connections=1)
    deps = replace(deps, settings=deps.settings.model_copy(update={"smtp_max_failures": 3}))
    emails = [f"user{n}@example.org" for n in range(10)]
    faults.handler.rcpt.update({email: ["drop"] for email in emails})
    jobs = jobs_for(deps, emails)
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert isinstance(report.stopped_by, DroppedDeliveryError)
    assert report.stopped is not None
    assert report.stopped.startswith("the connection was lost during 3 messages in a row")
    states = [(r.status, r.attempts) for r in ledger_rows(deps, jobs)]
    assert states[:3] == [("temp_failed", 1)] * 3 and set(states[3:]) == {("temp_failed", 0)}


async def test_a_kept_connection_that_died_meanwhile_is_opened_again_for_the_next_message(
    tmp_path: Path, faults: FaultServer
) -> None:
    """A connection kept from the last message and lost before the server answered anything
    in the next transaction (closed while idle) is no fault of that message: it goes out over
    a new connection in the same run."""
    deps = make_deps(tmp_path, faults, connections=1)
    faults.handler.mail = ["250 OK", "drop", "250 OK"]  # the second MAIL: closed, no reply
    jobs = jobs_for(deps, ["ada@example.org", "bob@example.org"])
    async with deps.mailer:  # type: ignore[union-attr]
        report = await deliver(deps, jobs)
    assert sorted((o.email, o.status) for o in report.outcomes) == [
        ("ada@example.org", "sent"), ("bob@example.org", "sent"),
    ]  # fmt: skip
    assert sorted(str(m["To"]) for m in faults.handler.accepted) == [job.email for job in jobs]
    assert faults.handler.commands["MAIL"] == 3 and len(faults.handler.peers) == 2
    assert [(r.status, r.attempts) for r in ledger_rows(deps, jobs)] == [("sent", 1)] * 2


async def cancel_the_others() -> None:
    """Cancel every other task, as a stop that would not wait does, and let them end."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.wait(others, timeout=5)


async def test_a_cancelled_run_records_the_messages_accepted_but_not_yet_recorded(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Cancelled the way a stop that would not wait cancels it (every task, the one writing
    the ``sent`` records too), the run records what the server accepted before it gives back
    the rest: those messages are not sent again. The one in flight stays ``sending``."""
    deps = make_deps(tmp_path, faults, connections=1)
    ledger, write = deps.store.ledger, deps.store.ledger.mark_sent_many
    loop, writes, over = threading.current_thread(), [0], threading.Event()

    def group_commit_never_ends(claims: Sequence[Claim], now: datetime) -> None:
        if threading.current_thread() is not loop:  # the process would end before this commits
            writes[0] += 1
            over.wait(10)
            return
        write(claims, now)

    ledger.mark_sent_many = group_commit_never_ends  # type: ignore[method-assign]
    emails = [f"user{n}@example.org" for n in range(10)]
    faults.handler.data.update({email: ["sleep:2"] for email in emails[5:]})  # the 6th stalls
    jobs = jobs_for(deps, emails)
    try:
        async with deps.mailer:  # type: ignore[union-attr]
            run = asyncio.create_task(deliver(deps, jobs))
            while faults.handler.commands["DATA"] < 6 or not writes[0]:
                await asyncio.sleep(0.01)
            await cancel_the_others()
    finally:
        over.set()
    assert run.cancelled()
    states = [row.status for row in ledger_rows(deps, jobs)]
    assert states == ["sent"] * 5 + ["sending"] + ["temp_failed"] * 4
    assert [str(m["To"]) for m in faults.handler.accepted] == emails[:5]


async def test_a_cancelled_run_records_the_accepted_messages_waiting_for_room_to_be_recorded(
    tmp_path: Path, faults: FaultServer
) -> None:
    """The ``sent`` records fall behind (the database is slow): ``UNRECORDED`` accepted
    messages wait for their transaction, and each sender holds one more, accepted too, until
    there is room for it. Cancelled then, the run records every message the server accepted,
    those the senders held as well: none of them is sent again once its lease runs out."""
    deps = make_deps(tmp_path, faults, connections=2)
    ledger, write = deps.store.ledger, deps.store.ledger.mark_sent_many
    loop, over = threading.current_thread(), threading.Event()

    def slow_group_commit(claims: Sequence[Claim], now: datetime) -> None:
        if threading.current_thread() is not loop:  # the process would end before this commits
            over.wait(10)
            return
        write(claims, now)

    ledger.mark_sent_many = slow_group_commit  # type: ignore[method-assign]
    jobs = jobs_for(deps, [f"user{n}@example.org" for n in range(UNRECORDED + 30)])
    try:
        async with deps.mailer:  # type: ignore[union-attr]
            run = asyncio.create_task(deliver(deps, jobs))
            async with asyncio.timeout(30):
                while len(faults.handler.accepted) < UNRECORDED + 2:  # each sender holds one
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the senders have their replies, and wait for room
            await cancel_the_others()
    finally:
        over.set()
    assert run.cancelled()
    accepted = {str(m["To"]) for m in faults.handler.accepted}
    assert len(accepted) == UNRECORDED + 2, "the senders waited for room"
    sent = {row.subscriber_id for row in ledger_rows(deps, jobs) if row.status == "sent"}
    assert sent == {job.subscriber_id for job in jobs if job.email in accepted}


async def test_a_message_whose_outcome_stays_unknown_is_given_up_in_the_end(
    tmp_path: Path, faults: FaultServer
) -> None:
    """Sent again as long as the backoff would retry it, then ``perm_failed`` saying why."""
    deps = make_deps(tmp_path, faults, connections=1)
    now = [T0]
    deps = replace(deps, clock=lambda: now[0], settings=deps.settings.model_copy(update={
        "retry_first_seconds": 60, "retry_max_seconds": 60, "retry_give_up_hours": 0.05,
        "send_lease_seconds": 60,
    }))  # fmt: skip
    faults.handler.data["ada@example.org"] = ["drop"]
    (job,) = jobs_for(deps, ["ada@example.org"])
    outcomes = []
    async with deps.mailer:  # type: ignore[union-attr]
        for _ in range(6):
            report = await deliver(deps, [job])
            outcomes += [(o.status, o.detail) for o in report.outcomes]
            now[0] += timedelta(minutes=2)
    assert [status for status, _ in outcomes] == ["unknown"] * 4 + ["failed", "already"]
    assert outcomes[4][1] == "outcome unknown after 4 attempts"
    row = deps.store.ledger.get(job.subscriber_id, DAY)
    assert row is not None and (row.status, row.attempts) == ("perm_failed", 4)
    assert len({str(m["Message-ID"]) for m in faults.handler.received()}) == 1
    assert len(faults.handler.received()) == 4
