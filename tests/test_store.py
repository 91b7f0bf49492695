"""The store on real SQLite files: subscriber sync, papers, and the delivery ledger."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import SQLModel, create_engine

import bot.store as store_module
from bot import status
from bot.errors import BotError, ConfigError
from bot.models import Interests, Paper, Subscriber
from bot.store import ClaimRequest, Removal, Store, SyncReport, shown_url, unavailable
from bot.store.ledger import Claim
from bot.store.runs import Patience, this_process
from bot.store.tables import SENDING, SENT, TEMP_FAILED, Delivery, RunRow, connect_options
from tests.conftest import free_port
from tests.postgres import postgres_url  # noqa: F401  (fixture)

DAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real SQLite file, and a real PostgreSQL database emptied for the test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store(db_url)
    yield opened
    opened.close()


def sub(email: str, *keywords: str) -> Subscriber:
    return Subscriber(email=email, interests=Interests(keywords=list(keywords)))


def paper(pid: str, upvotes: int = 0) -> Paper:
    return Paper(
        id=pid, title=f"Paper {pid}", abstract="Text.", authors=("A. Author",), upvotes=upvotes
    )


def ids(counter: list[int]) -> str:
    counter[0] += 1
    return f"<m{counter[0]}@example.org>"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_sync_adds_updates_and_deactivates_keeping_history(store: Store) -> None:
    def counts(report: SyncReport) -> tuple[int, ...]:
        return report.added, report.updated, report.reactivated, report.deactivated, report.before

    first = store.sync_subscribers([sub("ada@example.org", "moe"), sub("bob@example.org")])
    assert counts(first) == (2, 0, 0, 0, 0)
    again = store.sync_subscribers([sub("ada@example.org", "moe"), sub("bob@example.org")])
    assert counts(again) == (0, 0, 0, 0, 2)
    changed = store.sync_subscribers([sub("ada@example.org", "routing")])
    assert counts(changed) == (0, 1, 0, 1, 2)
    active = store.active_subscribers()
    assert [s.email for s in active.values()] == ["ada@example.org"]
    assert next(iter(active.values())).interests.keywords == ["routing"]
    back = store.sync_subscribers([sub("ada@example.org", "routing"), sub("bob@example.org")])
    assert counts(back) == (0, 0, 1, 0, 1), "bob comes back: reactivated, not updated"
    assert back.ids == first.ids


def test_a_stored_profile_that_no_longer_validates_is_left_out_said_in_the_log(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A time zone dropped from the system's database since the profile was stored: the others
    are still served."""
    store.sync_subscribers([sub("ada@example.org", "a"), sub("bob@example.org", "b")])
    with store.engine.begin() as db:
        db.execute(
            text("UPDATE subscribers SET profile = replace(profile, '\"UTC\"', '\"Mars/Base\"')"
                 " WHERE email = 'bob@example.org'")
        )  # fmt: skip
    assert [s.email for s in store.active_subscribers().values()] == ["ada@example.org"]
    assert "stored profile of bob@example.org left out: " in caplog.text


def test_a_sync_is_judged_before_it_is_made_by_the_same_rule(store: Store) -> None:
    """``removal`` tells what a sync would deactivate, changing nothing; most means more than
    half of the active subscribers, and 2 at least."""
    everyone = [sub(f"reader{n}@example.org") for n in range(5)]
    store.sync_subscribers(everyone)
    for kept, most in ((4, False), (3, False), (2, True), (0, True)):
        assert store.removal(everyone[:kept]) == Removal(5 - kept, 5)
        assert store.removal(everyone[:kept]).most is most
    assert len(store.active_subscribers()) == 5
    assert store.sync_subscribers(everyone[:2]).removal == Removal(3, 5)
    assert store.removal(everyone[:2]) == Removal(0, 2)
    assert not Removal(1, 1).most and Removal(2, 3).most, "one subscriber alone is no mass"
    assert not Removal(2, 4).most and Removal(3, 4).most, "half is not most"


def test_save_papers_is_idempotent_and_updates_counts(store: Store) -> None:
    assert store.save_papers([paper("1"), paper("2")], DAY) == (2, 0)
    assert store.save_papers([paper("1"), paper("2")], DAY) == (0, 0)
    assert store.save_papers([paper("1", upvotes=9)], DAY) == (0, 1)
    stored = store.papers_between(DAY, DAY)
    assert [s.paper.id for s in stored] == ["1", "2"]
    assert stored[0].paper.upvotes == 9 and stored[0].paper.authors == ("A. Author",)
    assert store.has_papers_for(DAY) and not store.has_papers_for(DAY + timedelta(days=1))


def test_a_list_whose_papers_were_all_stored_the_day_before_is_stored_for_its_day(
    store: Store,
) -> None:
    """A paper keeps the date of the first list that carried it: a list holding only papers
    of the day before (a file source, arXiv between announcements) is still stored for its
    own day, and an empty one is not."""
    before, day = DAY - timedelta(days=1), DAY
    assert store.save_papers([paper("1"), paper("2")], before) == (2, 0)
    assert not store.has_papers_for(day)
    assert store.save_papers([paper("1"), paper("2")], day) == (0, 0)
    assert store.has_papers_for(day) and store.has_papers_for(before)
    assert {s.list_date for s in store.papers_between(before, day)} == {before}
    assert store.save_papers([], day + timedelta(days=1)) == (0, 0)
    assert not store.has_papers_for(day + timedelta(days=1)), "an empty list stores nothing"


def test_a_paper_stored_again_from_fewer_sources_keeps_what_they_did_not_bring(
    store: Store,
) -> None:
    """A paper on Hugging Face one day and in arXiv's feed the next (or a fetch run again while
    Hugging Face is down) keeps its upvotes and links: only arXiv answered this time."""
    from bot.sources.arxiv import parse_arxiv_feed
    from bot.sources.hf import parse_hf_json
    from tests.sources.sourcekit import fixture_bytes

    hf = parse_hf_json(fixture_bytes("hf/daily_papers_2024-01-16.json")).papers
    feed = parse_arxiv_feed(fixture_bytes("arxiv/rss_cs.LG+cs.CL.xml")).papers
    store.save_papers(hf, DAY - timedelta(days=1))
    new, updated = store.save_papers(feed, DAY)
    assert (new, updated) == (len(feed) - 1, 1)
    [stored] = [
        s for s in store.papers_between(DAY - timedelta(days=1), DAY) if s.paper.id == "2401.10001"
    ]
    assert (
        stored.paper.upvotes == 57
        and stored.paper.hf_url == "https://huggingface.co/papers/2401.10001"
    )
    assert stored.paper.categories and stored.paper.source == "arxiv,hf"
    assert stored.list_date == DAY - timedelta(days=1)
    assert store.save_papers(feed, DAY) == (0, 0)


def test_a_database_written_before_lists_were_recorded_knows_its_days_by_its_papers(
    db_url: str,
) -> None:
    """Its papers' list dates answer for the days it stored; the lists table is added."""
    store = Store(db_url)
    store.save_papers([paper("1")], DAY)
    with store.engine.begin() as db:
        db.execute(text("DROP TABLE lists"))
    store.close()
    reopened = Store(db_url)
    try:
        assert reopened.has_papers_for(DAY)
        assert not reopened.has_papers_for(DAY + timedelta(days=1))
        reopened.save_papers([paper("1")], DAY + timedelta(days=1))
        assert reopened.has_papers_for(DAY + timedelta(days=1))
    finally:
        reopened.close()


def test_save_papers_reads_the_stored_rows_in_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One query per chunk of ids: a database caps the values one statement may carry."""
    monkeypatch.setattr(store_module, "IN_LIST_LIMIT", 2)
    batch = [paper(str(n)) for n in range(5)]
    assert store.save_papers(batch, DAY) == (5, 0)
    assert store.save_papers([*batch, paper("4", upvotes=3), paper("5")], DAY) == (1, 1)
    assert len(store.papers_between(DAY, DAY)) == 6


def test_claim_is_exclusive_and_sent_records_items(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    claim = store.ledger.claim(
        sid, DAY, NOW, paper_ids=["1", "2"], new_message_id=lambda: ids(counter)
    )
    assert claim is not None and claim.message_id == "<m1@example.org>"
    assert (
        store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
        is None
    )
    store.ledger.mark_sent(claim, NOW)
    assert store.sent_paper_ids([sid]) == {sid: {"1", "2"}}
    assert (
        store.ledger.claim(sid, DAY, NOW, paper_ids=["3"], new_message_id=lambda: ids(counter))
        is None
    )
    row = store.ledger.get(sid, DAY)
    assert row is not None and row.status == "sent" and row.sent_at is not None


def test_crashed_sending_row_is_resumed_with_the_same_message_id(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    first = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert first is not None
    # The process dies here. Within the lease nobody may take the row...
    soon = NOW + timedelta(minutes=1)
    assert (
        store.ledger.claim(sid, DAY, soon, paper_ids=["9"], new_message_id=lambda: ids(counter))
        is None
    )
    # ...after it, the row is resumed with the same Message-ID and papers.
    later = NOW + store.ledger.lease + timedelta(seconds=1)
    resumed = store.ledger.claim(
        sid, DAY, later, paper_ids=["9"], new_message_id=lambda: ids(counter)
    )
    assert resumed is not None and resumed.resumed
    assert (resumed.message_id, resumed.paper_ids) == (first.message_id, ("1",))


def gone_pid() -> int:
    """The id of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("claimer", "taken"), [("gone", True), ("alive", False), ("elsewhere", False)]
)
def test_a_row_whose_claiming_process_is_gone_is_resumed_at_once(
    store: Store, claimer: str, taken: bool
) -> None:
    """A killed ``send`` leaves its claimed rows ``sending``: the next run resumes them at once
    (same Message-ID and papers) when that process is known to be gone; a process that still
    runs, or one on another machine, keeps them for the lease."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    first = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert first is not None
    process = this_process() | {
        "gone": {"pid": gone_pid()}, "alive": {"pid": os.getppid()}, "elsewhere": {"host": "b"}
    }[claimer]  # fmt: skip
    with store.engine.begin() as db:
        db.execute(update(Delivery).values(claimed_by=process))
    soon = NOW + timedelta(minutes=1)
    again = store.ledger.claim(sid, DAY, soon, paper_ids=["9"], new_message_id=lambda: ids(counter))
    assert (again is not None) == taken
    if again is not None:
        assert again.resumed and (again.message_id, again.paper_ids) == (first.message_id, ("1",))
        row = store.ledger.get(sid, DAY)
        assert row is not None and row.claimed_by == this_process()


def test_a_database_made_before_a_column_existed_gets_it(db_url: str) -> None:
    """Columns added to a table later are added to an older database when it is opened; its
    rows have none (a ``sending`` row of an older paperbot waits for its lease)."""
    old = Store(db_url)
    sid = old.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    first = old.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert first is not None
    with old.engine.begin() as db:
        db.execute(text("ALTER TABLE deliveries DROP COLUMN claimed_by"))
    old.close()
    opened = [Store(db_url) for _ in range(2)]  # the second finds the column there
    try:
        store = opened[0]
        row = store.ledger.get(sid, DAY)
        assert row is not None and row.claimed_by is None and row.status == SENDING
        soon = NOW + timedelta(minutes=1)
        kw = {"paper_ids": ["1"], "new_message_id": lambda: ids(counter)}
        assert store.ledger.claim(sid, DAY, soon, **kw) is None  # type: ignore[arg-type]
        later = NOW + store.ledger.lease + timedelta(seconds=1)
        resumed = store.ledger.claim(sid, DAY, later, **kw)  # type: ignore[arg-type]
        assert resumed is not None and resumed.message_id == first.message_id
    finally:
        for each in opened:
            each.close()


def test_an_older_runs_table_gets_the_process_column_and_its_runs_name_none(
    db_url: str,
) -> None:
    old = Store(db_url)
    old.finish_run(old.start_run("send"), "ok", {"counts": {"sent": 1}})
    with old.engine.begin() as db:
        db.execute(text("ALTER TABLE runs DROP COLUMN process"))
    old.close()
    store = Store(db_url)
    try:
        store.finish_run(store.start_run("sweep"), "ok", {})
        new, older = store.recent_runs()
        assert (older.command, older.process) == ("send", None)
        assert new.process == f"{socket.gethostname()}:{os.getpid()}"
        shown = status.collect(store, NOW)["runs"]
        assert [run["process"] for run in shown] == [new.process, None]
    finally:
        store.close()


def test_an_older_deliveries_table_gets_the_resent_from_column(db_url: str) -> None:
    old = Store(db_url)
    sid = old.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    first = old.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert first is not None
    old.ledger.mark_sent(first, NOW)
    with old.engine.begin() as db:
        db.execute(text("ALTER TABLE deliveries DROP COLUMN resent_from"))
    old.close()
    store = Store(db_url)
    try:
        kw = {"paper_ids": ["1"], "new_message_id": lambda: ids(counter), "force": True}
        forced = store.ledger.claim(sid, DAY, NOW, **kw)  # type: ignore[arg-type]
        assert forced is not None and forced.sent_before == (first.message_id, ("1",))
        store.ledger.release(forced, NOW, "stopped")
        row = store.ledger.get(sid, DAY)
        assert row is not None and (row.status, row.message_id) == ("sent", first.message_id)
    finally:
        store.close()


def test_a_message_of_unknown_outcome_waits_for_its_lease_and_can_be_given_up(
    store: Store,
) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    kw = {"paper_ids": ["1"], "new_message_id": lambda: ids(counter)}
    first = store.ledger.claim(sid, DAY, NOW, **kw)  # type: ignore[arg-type]
    assert first is not None
    until = NOW + timedelta(hours=1)
    assert store.ledger.mark_unknown(first, NOW, error="connection lost", until=until)
    row = store.ledger.get(sid, DAY)
    assert row is not None and (row.status, row.lease_until) == ("sending", until)
    assert row.claimed_by is None  # no process sends it meanwhile: its end changes nothing
    later = NOW + store.ledger.lease + timedelta(seconds=1)
    assert store.ledger.claim(sid, DAY, later, retry_now=True, **kw) is None  # type: ignore[arg-type]
    resumed = store.ledger.claim(sid, DAY, until + timedelta(seconds=1), **kw)  # type: ignore[arg-type]
    assert resumed is not None and resumed.resumed and resumed.message_id == first.message_id
    assert store.ledger.mark_failed(
        resumed, until, error="outcome unknown after 1 attempts", attempted=False
    )
    row = store.ledger.get(sid, DAY)
    assert row is not None
    assert (row.status, row.attempts, row.lease_until) == ("perm_failed", 1, None)


def _take_over_and_hold(url: str, sid: int, when: datetime, taken: Any, done: Any) -> None:
    """Another worker: claim ada's row at ``when``, and live on holding it until ``done``."""
    claim = Store(url).ledger.claim(
        sid, DAY, when, paper_ids=["1"], new_message_id=lambda: "<other@example.org>"
    )
    taken.put(None if claim is None else claim.attempts)
    done.wait(60)


def test_claims_the_database_refused_to_settle_are_settled_once_it_works_but_never_taken(
    db_url: str,
) -> None:
    """Claims this process could not give back (or record sent) while the database was away
    are written once it works again, at once rather than after their lease; a row whose lease
    ran out meanwhile and that another process took over stays that process's."""
    store = Store(db_url)
    ids = store.sync_subscribers([sub(e) for e in ("ada@x.org", "alan@x.org", "bob@x.org")]).ids
    requests = [
        ClaimRequest(ids[email], DAY, ("1",), f"<{n}@example.org>")
        for n, email in enumerate(("ada@x.org", "alan@x.org", "bob@x.org"))
    ]
    ada, alan, bob = store.ledger.claim_many(requests, NOW)
    assert ada is not None and alan is not None and bob is not None
    store.ledger.owe([ada, alan], "not sent: the run ended with a database error")
    store.ledger.owe([bob], None)  # the server accepted it
    later = NOW + store.ledger.lease + timedelta(seconds=1)  # a long outage: their lease ran out
    context = multiprocessing.get_context("fork")
    taken, done = context.Queue(), context.Event()
    other = context.Process(
        target=_take_over_and_hold, args=(db_url, ids["ada@x.org"], later, taken, done)
    )
    other.start()
    try:
        assert taken.get(timeout=60) == 2, "the other worker resumed ada's row"
        assert store.ledger.settle_owed(later) == (1, 1)
        row = store.ledger.get(ids["ada@x.org"], DAY)
        assert row is not None and row.status == SENDING and row.attempts == 2
        assert row.claimed_by == this_process() | {"pid": other.pid}
    finally:
        done.set()
        other.join(60)
    row = store.ledger.get(ids["alan@x.org"], DAY)
    assert row is not None and (row.status, row.attempts) == (TEMP_FAILED, 0)
    assert row.next_attempt_at is not None and row.last_error is not None
    row = store.ledger.get(ids["bob@x.org"], DAY)
    assert row is not None and row.status == SENT
    assert store.ledger.settle_owed(later) == (0, 0), "each is written once"
    store.close()


def test_temporary_failure_waits_for_its_time_unless_retry_now(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    claim = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert claim is not None
    store.ledger.mark_failed(
        claim, NOW, error="451 later", code=451, retry_at=NOW + timedelta(minutes=5)
    )
    kw = {"paper_ids": ["1"], "new_message_id": lambda: ids(counter)}
    assert store.ledger.claim(sid, DAY, NOW + timedelta(minutes=1), **kw) is None  # type: ignore[arg-type]
    assert [r.id for r in store.ledger.due_retries(NOW + timedelta(minutes=6))] == [
        claim.delivery_id
    ]
    again = store.ledger.claim(sid, DAY, NOW + timedelta(minutes=1), retry_now=True, **kw)  # type: ignore[arg-type]
    assert again is not None and again.attempts == 2 and again.message_id == claim.message_id


def test_retries_due_during_a_pause_wait_for_its_end(store: Store) -> None:
    emails = ["ada@example.org", "bob@example.org"]
    found = store.sync_subscribers([sub(e) for e in emails]).ids
    counter = [0]
    kw = {"paper_ids": ["1"], "new_message_id": lambda: ids(counter)}
    released, later = (store.ledger.claim(found[e], DAY, NOW, **kw) for e in emails)  # type: ignore[arg-type]
    assert released is not None and later is not None
    store.ledger.release(released, NOW, "not sent: connection refused")
    store.ledger.mark_failed(later, NOW, error="451", retry_at=NOW + timedelta(hours=1))
    until = NOW + timedelta(minutes=2)
    assert store.ledger.postpone_retries(until, NOW) == 1
    rows = {e: store.ledger.get(found[e], DAY) for e in emails}
    assert {e: r.next_attempt_at for e, r in rows.items() if r} == {
        "ada@example.org": until, "bob@example.org": NOW + timedelta(hours=1),
    }  # fmt: skip
    assert store.ledger.due_retries(NOW + timedelta(minutes=1)) == []
    again = store.ledger.claim(found["ada@example.org"], DAY, NOW, retry_now=True, **kw)  # type: ignore[arg-type]
    assert again is not None, "a manual retry goes at once"


def test_force_takes_a_sent_row_with_a_new_message_id(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    claim = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert claim is not None
    store.ledger.mark_sent(claim, NOW)
    forced = store.ledger.claim(
        sid, DAY, NOW, paper_ids=["1", "2"], new_message_id=lambda: ids(counter), force=True
    )
    assert forced is not None and forced.forced and forced.message_id != claim.message_id
    store.ledger.mark_sent(forced, NOW)
    assert store.sent_paper_ids([sid])[sid] == {"1", "2"}


@pytest.mark.parametrize("then", ["fails", "is sent"])
def test_a_forced_resend_taken_over_after_a_crash_still_knows_the_digest_sent_before(
    store: Store, then: str
) -> None:
    """A forced resend's sender dies; the run that takes the row over once its lease has run
    out sends it as it was. Should that fail, the row is the digest sent before again (the
    subscriber has it: nothing retries it); sent, it is the resend."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    first = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert first is not None
    store.ledger.mark_sent(first, NOW)
    kw = {"paper_ids": ["1", "2"], "new_message_id": lambda: ids(counter)}
    forced = store.ledger.claim(sid, DAY, NOW, force=True, **kw)  # type: ignore[arg-type]
    assert forced is not None and forced.resent
    later = NOW + store.ledger.lease + timedelta(seconds=1)  # its sender died meanwhile
    taken = store.ledger.claim(sid, DAY, later, **kw)  # type: ignore[arg-type]
    assert taken is not None and taken.resumed and not taken.resent
    assert (taken.message_id, taken.sent_before) == (forced.message_id, (first.message_id, ("1",)))
    if then == "fails":
        store.ledger.mark_failed(taken, later, error="451", retry_at=later + timedelta(hours=1))
        expected = ("sent", first.message_id, ["1"], None)
    else:
        store.ledger.mark_sent(taken, later)
        expected = ("sent", forced.message_id, ["1", "2"], None)
    row = store.ledger.get(sid, DAY)
    assert row is not None
    assert (row.status, row.message_id, row.paper_ids, row.resent_from) == expected
    assert store.ledger.claim(sid, DAY, later + timedelta(hours=2), **kw) is None  # type: ignore[arg-type]


def test_force_never_takes_a_row_another_run_is_sending(store: Store) -> None:
    """--force resends a settled digest; one being sent now (its lease running, its process
    alive) stays with its sender, or the subscriber would get it twice at once."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    claim = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert claim is not None
    kw = {"paper_ids": ["1"], "new_message_id": lambda: ids(counter), "force": True}
    assert store.ledger.claim(sid, DAY, NOW, **kw) is None  # type: ignore[arg-type]
    store.ledger.mark_sent(claim, NOW)
    assert store.ledger.claim(sid, DAY, NOW, **kw) is not None  # type: ignore[arg-type]


def run_together(stores: list[Store], race: Callable[[Store, int], None]) -> None:
    """``race(store, n)`` in a thread for each store at once; then close the stores."""
    threads = [threading.Thread(target=race, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()


def claims_won(db_url: str, sid: int, now: datetime) -> int:
    """How many of 8 stores racing to claim Ada's digest row at ``now`` got it."""
    stores = [Store(db_url) for _ in range(8)]
    wins: list[object] = []
    barrier = threading.Barrier(len(stores))

    def race(store: Store, n: int) -> None:
        barrier.wait()
        claim = store.ledger.claim(
            sid, DAY, now, paper_ids=["1"], new_message_id=lambda: f"<{n}@x.org>"
        )
        if claim is not None:
            wins.append(claim)

    run_together(stores, race)
    return len(wins)


def test_two_stores_racing_for_one_row_claim_it_once(db_url: str) -> None:
    setup = Store(db_url)
    sid = setup.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    setup.close()
    assert claims_won(db_url, sid, NOW) == 1


def test_stores_racing_to_resume_an_abandoned_row_resume_it_once(db_url: str) -> None:
    """A row left ``sending`` stays ``sending`` when it is taken over: only the row as it was
    read (its last update) may be taken, or every run that read it would send it again."""
    setup = Store(db_url)
    sid = setup.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    first = setup.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: "<0@x.org>")
    assert first is not None
    later = NOW + setup.ledger.lease + timedelta(seconds=1)
    setup.close()
    assert claims_won(db_url, sid, later) == 1


def test_skipped_is_recorded_once(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    assert store.ledger.record_skipped(sid, DAY, NOW, "nothing matched")
    assert not store.ledger.record_skipped(sid, DAY, NOW, "nothing matched")
    assert store.ledger.counts() == [(DAY, "skipped", 1)]


def test_suppressions(store: Store) -> None:
    store.suppress("Ada@Example.org", "unsubscribed")
    assert "ada@example.org" in store.suppressed_emails()
    assert store.suppressed()["ada@example.org"].reason == "unsubscribed"
    assert store.unsuppress("ada@example.org") and not store.suppressed_emails()


def test_runs_are_recorded(store: Store) -> None:
    run = store.start_run("send")
    store.finish_run(run, "ok", {"counts": {"sent": 2}, "when": DAY})
    last = store.recent_runs()[0]
    assert (last.command, last.status, last.summary["counts"]) == ("send", "ok", {"sent": 2})
    assert last.summary["when"] == "2026-11-25"


def test_a_running_run_shows_it_is_alive_until_it_is_finished(store: Store) -> None:
    store.heartbeat = 0.02
    run = store.start_run("send")
    (started,) = store.recent_runs()
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    table = f"{os.readlink('/proc/self/ns/pid')} boot {boot}"
    assert started.summary["process"] == {
        "host": socket.gethostname(),
        "table": table,
        "pid": os.getpid(),
    }
    deadline = time.monotonic() + 10
    while store.recent_runs()[0].summary["alive_at"] == started.summary["alive_at"]:
        assert time.monotonic() < deadline, "no sign of life"
        time.sleep(0.01)
    store.finish_run(run, "ok", {"counts": {"sent": 1}})
    time.sleep(0.1)  # a few beats: none overwrites the finished run
    (finished,) = store.recent_runs()
    assert (finished.status, finished.summary) == ("ok", {"counts": {"sent": 1}})


def test_a_run_ending_while_the_database_is_away_records_its_end_when_the_next_starts(
    tmp_path: Path,
) -> None:
    """The database went away during a sweep (its file cannot be opened): the sweep's end is
    written when the process's next run starts, rather than the sweep being left ``running``
    and later shown as interrupted while its process lives on."""
    folder = tmp_path / "db"
    folder.mkdir()
    store = Store(f"sqlite:///{folder / 'bot.db'}")
    with pytest.raises(OperationalError), store.run("sweep") as record:
        record.status, record.summary = "ok", {"counts": {"sent": 3}}
        store.close()  # no connection stays open to the moved file
        folder.rename(tmp_path / "db-moved")
    (tmp_path / "db-moved").rename(folder)
    assert [run.status for run in store.recent_runs()] == ["running"]
    store.start_run("sweep")
    started, ended = store.recent_runs()
    assert (started.status, ended.status, ended.summary) == (
        "running", "ok", {"counts": {"sent": 3}},
    )  # fmt: skip
    assert ended.finished_at is not None and ended.finished_at <= started.started_at
    store.close()


def test_a_command_about_to_exit_tries_again_to_record_its_run_and_says_what_it_could_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No later run of a one-shot command records an end the database refused: it is tried
    again for a while (the database is back within it: recorded), and failing that the log
    names the run, how it ended and what ``paperbot status`` shows of it."""
    folder = tmp_path / "db"
    folder.mkdir()
    store = Store(f"sqlite:///{folder / 'bot.db'}")
    back = threading.Timer(0.6, lambda: (tmp_path / "db-moved").rename(folder))
    with store.run("send", patience=Patience(5)) as record:
        record.status, record.summary = "ok", {"counts": {"sent": 3}}
        store.engine.dispose()  # no connection stays open to the moved file
        folder.rename(tmp_path / "db-moved")
        back.start()
    (run,) = store.recent_runs()
    assert (run.status, run.summary, store.unrecorded) == ("ok", {"counts": {"sent": 3}}, [])
    with pytest.raises(OperationalError), store.run("send", patience=Patience(0.6)) as record:
        record.status, record.summary = "failed", {"counts": {"sent": 2, "failed": 1}}
        store.engine.dispose()
        folder.rename(tmp_path / "db-moved")
    (tmp_path / "db-moved").rename(folder)
    unrecorded, _ = store.recent_runs()
    assert (unrecorded.status, store.unrecorded) == ("running", [unrecorded.id])
    (said,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert said == (
        f"the end of run {unrecorded.id} ({socket.gethostname()}:{os.getpid()}) was not "
        "recorded: it ended failed (sent 2 failed 1), but the database refused to record it: "
        "unable to open database file; paperbot status shows the run interrupted once this "
        "process has ended, with the messages it recorded sent"
    )
    store.close()


def test_writes_tried_with_one_patience_wait_that_long_in_all(tmp_path: Path) -> None:
    """A command about to exit tries again each write the database refuses (what its ledger
    owes, its run's end) until one deadline, the first refusal's: it waits that long at most
    in all, however many writes are refused."""
    folder = tmp_path / "db"
    folder.mkdir()
    store = Store(f"sqlite:///{folder / 'bot.db'}")
    store.engine.dispose()  # no connection stays open to the moved file
    folder.rename(tmp_path / "db-moved")
    patience, started = Patience(1.0), time.monotonic()
    for _ in range(3):
        with pytest.raises(OperationalError):
            patience.keep_trying(store.recent_runs)
    waited = time.monotonic() - started
    assert 0.7 < waited < 1.3, "tried again until the deadline, not a second for each write"
    store.close()


def test_each_run_names_the_process_that_ran_it(store: Store) -> None:
    run = store.start_run("send")
    store.finish_run(run, "ok", {})
    (finished,) = store.recent_runs()
    assert finished.process == f"{socket.gethostname()}:{os.getpid()}"


def test_closing_the_store_stops_the_heartbeat(store: Store) -> None:
    store.heartbeat = 0.02
    store.start_run("send")
    beating = store._beating
    assert beating is not None and beating.is_alive()
    store.close()
    beating.join(timeout=5)
    assert not beating.is_alive()


def _run(summary: dict[str, Any], status: str = "running") -> RunRow:
    return RunRow(command="send", started_at=NOW, status=status, summary=summary)


def test_a_running_run_whose_process_is_gone_is_lost() -> None:
    alive_at = (NOW + timedelta(minutes=10)).isoformat()
    process = {"host": "box", "table": "pid:[7]", "pid": 41}
    here = _run({"process": process, "alive_at": alive_at})
    box = ("box", "pid:[7]")
    soon = NOW + timedelta(minutes=11)
    assert here.lost(soon, box, lambda pid: pid != 41) == (
        "its process (41 on box) is gone and never recorded the run's end (killed, or the "
        "database refused it)"
    )
    assert here.lost(soon, box, lambda pid: True) is None
    assert here.lost(soon, ("other", "pid:[7]"), lambda pid: False) is None, "another host"
    assert here.lost(soon, ("box", "pid:[8]"), lambda pid: False) is None, (
        "a container with the same host name cannot see the process"
    )
    late = NOW + timedelta(minutes=16)
    assert here.lost(late, ("other", None), lambda pid: True) == (
        "no sign of life since 2026-11-25 08:10 UTC (process 41 on box)"
    )
    assert here.lost(late, box, lambda pid: True) is not None, "its pid went to another process"
    older = _run({})  # recorded before runs named their process
    assert older.lost(NOW + timedelta(minutes=4), box, lambda pid: False) is None
    assert older.lost(NOW + timedelta(minutes=6), box, lambda pid: False) == (
        "no sign of life since 2026-11-25 08:00 UTC"
    )
    assert _run({}, "ok").lost(late, box, lambda pid: False) is None


def taken_over(store: Store) -> tuple[int, Claim, Claim, datetime]:
    """Ada's row claimed by A, then resumed by B once A's lease ran out: her id, A's claim,
    B's, and when B took it."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    a = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    later = NOW + store.ledger.lease + timedelta(seconds=1)
    b = store.ledger.claim(sid, DAY, later, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert a is not None and b is not None and b.resumed
    return sid, a, b, later


def test_a_stale_sender_cannot_overwrite_the_row(store: Store) -> None:
    sid, a, b, later = taken_over(store)
    store.ledger.mark_sent(a, later)  # A's message did get through: sent is the truth
    assert not store.ledger.mark_failed(b, later, error="451", retry_at=later)
    assert not store.ledger.release(b, later, "not sent: shutting down")
    row = store.ledger.get(sid, DAY)
    assert row is not None and row.status == "sent"
    third = store.ledger.claim(sid, DAY, later + timedelta(hours=1), paper_ids=["1"],
                               new_message_id=lambda: "<third@x.org>")  # fmt: skip
    assert third is None


def test_a_sender_whose_row_was_taken_over_cannot_settle_it(store: Store) -> None:
    """A's lease ran out and B resumed the row: A's late failure or release must not move the
    row B is sending now (a retry would then send it a third time)."""
    sid, a, b, later = taken_over(store)
    assert not store.ledger.mark_failed(a, later, error="451", code=451, retry_at=later)
    assert not store.ledger.release(a, later, "not sent: shutting down")
    assert not store.ledger.mark_skipped(a, later, "suppressed")
    row = store.ledger.get(sid, DAY)
    assert row is not None and (row.status, row.attempts) == ("sending", 2)
    assert store.ledger.mark_failed(b, later, error="451", code=451, retry_at=later)


def test_sent_items_written_elsewhere_do_not_undo_sent(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    alert = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter),
                               kind="alert", ref="1")  # fmt: skip
    digest = store.ledger.claim(
        sid, DAY, NOW, paper_ids=["1", "2"], new_message_id=lambda: ids(counter)
    )
    assert alert is not None and digest is not None
    store.ledger.mark_sent(alert, NOW)
    store.ledger.mark_sent(digest, NOW)  # paper 1 is already a sent item: no conflict, no rollback
    row = store.ledger.get(sid, DAY)
    assert row is not None and row.status == "sent"
    assert store.sent_paper_ids([sid])[sid] == {"1", "2"}


def test_alerts_whose_window_passed_are_given_up_failed_or_left_sending(store: Store) -> None:
    """A sender that died left one alert ``sending``; another failed for now: once the window
    has passed, neither waits any more (their papers go in the digest). One being sent stays."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]

    def alert(paper: str, day: date = DAY) -> Claim:
        claim = store.ledger.claim(sid, day, NOW, paper_ids=[paper], kind="alert", ref=paper,
                                   new_message_id=lambda: ids(counter))  # fmt: skip
        assert claim is not None
        return claim

    alert("1")  # its sender dies
    failed = alert("2")
    alert("3")
    store.ledger.mark_failed(failed, NOW, error="451", retry_at=NOW + timedelta(hours=1))
    in_window = alert("4", DAY + timedelta(days=1))  # dated the window's first day
    store.ledger.mark_failed(in_window, NOW, error="451", retry_at=NOW + timedelta(hours=1))
    later = NOW + timedelta(days=2)
    resumed = store.ledger.claim(sid, DAY, later, paper_ids=["3"], kind="alert", ref="3",
                                 new_message_id=lambda: ids(counter))  # fmt: skip
    assert resumed is not None  # and being sent again: its lease runs on
    assert store.ledger.settle_old_alerts(DAY + timedelta(days=1), later) == 2
    states = {ref: store.ledger.get(sid, DAY, "alert", ref) for ref in "123"}
    assert {ref: row.status for ref, row in states.items() if row} == {
        "1": "skipped", "2": "skipped", "3": "sending",
    }  # fmt: skip
    kept = store.ledger.get(sid, DAY + timedelta(days=1), "alert", "4")
    assert kept is not None and kept.status == "temp_failed"


def test_skipping_settles_a_superseded_retry(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    claim = store.ledger.claim(sid, DAY, NOW, paper_ids=["1"], new_message_id=lambda: ids(counter))
    assert claim is not None
    store.ledger.mark_failed(claim, NOW, error="452", code=452, retry_at=NOW + timedelta(minutes=5))
    assert store.ledger.record_skipped(sid, DAY, NOW + timedelta(days=1), "nothing matched")
    row = store.ledger.get(sid, DAY)
    assert row is not None and row.status == "skipped" and "superseded" in (row.last_error or "")
    assert row.paper_ids == [], "it carried no paper"
    assert store.ledger.due_retries(NOW + timedelta(days=2)) == []
    assert not store.ledger.record_skipped(sid, DAY, NOW + timedelta(days=1), "nothing matched")


def test_a_message_left_sending_is_not_skipped_but_resumed_as_it_was(store: Store) -> None:
    """Its sender died after claiming it, maybe after sending it: nothing to send now does not
    settle it, and a "nothing matched" note is resumed as a note, whatever matches now."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    for day, papers in ((DAY, ["1"]), (DAY + timedelta(days=1), [])):
        first = store.ledger.claim(
            sid, day, NOW, paper_ids=papers, new_message_id=lambda: ids(counter)
        )
        assert first is not None
        later = NOW + store.ledger.lease + timedelta(seconds=1)
        assert not store.ledger.record_skipped(sid, day, later, "nothing matched")
        resumed = store.ledger.claim(
            sid, day, later, paper_ids=["2"], new_message_id=lambda: ids(counter)
        )
        assert resumed is not None and resumed.resumed
        assert (resumed.message_id, resumed.paper_ids) == (first.message_id, tuple(papers))


def test_a_retry_carries_what_is_unsent_now_but_a_resend_repeats_itself(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    counter = [0]
    claim = store.ledger.claim(
        sid, DAY, NOW, paper_ids=["1", "2"], new_message_id=lambda: ids(counter)
    )
    assert claim is not None
    store.ledger.mark_failed(claim, NOW, error="451", code=451, retry_at=NOW)
    retry = store.ledger.claim(sid, DAY, NOW, paper_ids=["2"], new_message_id=lambda: ids(counter))
    assert retry is not None and retry.paper_ids == ("2",) and retry.message_id == claim.message_id


def alert_claims(store: Store, sid: int) -> Any:
    """Claim the alert keyed by ``ref`` for ``papers`` (on DAY, at NOW unless ``at``)."""
    counter = [0]

    def claim(ref: str, *papers: str, at: datetime = NOW, **options: Any) -> Any:
        return store.ledger.claim(
            sid, DAY, at, paper_ids=papers, new_message_id=lambda: ids(counter), kind="alert",
            ref=ref, **options,
        )  # fmt: skip

    return claim


def test_a_paper_goes_in_one_alert_row_however_the_papers_are_grouped(store: Store) -> None:
    """Two sweeps at once may group the new papers differently: a row that would hold a paper
    another row holds is not made, and leaves nothing behind; its other papers stay free."""
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    alert = alert_claims(store, sid)
    first = alert("1", "1", "2")
    assert first is not None and first.paper_ids == ("1", "2")
    assert alert("0", "0", "2", "3") is None
    assert store.ledger.get(sid, DAY, "alert", "0") is None
    later = alert("0", "0", "3")
    assert later is not None and later.paper_ids == ("0", "3")
    counter = [0]
    both = [
        ClaimRequest(sid, DAY, papers, ids(counter), "alert", papers[0])
        for papers in (("4", "5"), ("5", "6"))
    ]
    won, lost = store.ledger.claim_many(both, NOW)
    assert won is not None and lost is None, "in one batch too"
    assert store.ledger.get(sid, DAY, "alert", "5") is None
    assert sorted(p for _, p in store.ledger.alert_rows([sid], DAY)) == list("012345")


def test_stores_racing_with_overlapping_alerts_put_each_paper_in_one(db_url: str) -> None:
    setup = Store(db_url)
    sid = setup.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    stores = [Store(db_url) for _ in range(8)]
    wins: list[Any] = []
    barrier = threading.Barrier(len(stores))

    def race(store: Store, n: int) -> None:
        barrier.wait()
        papers = [str(n), str((n + 1) % len(stores))]  # a ring: each shares one with two
        claim = store.ledger.claim(
            sid, DAY, NOW, paper_ids=papers, new_message_id=lambda: f"<{n}@x.org>",
            kind="alert", ref=papers[0],
        )  # fmt: skip
        if claim is not None:
            wins.append(claim)

    run_together(stores, race)
    held = [paper for claim in wins for paper in claim.paper_ids]
    assert wins and len(held) == len(set(held))
    assert sorted(setup.ledger.alert_rows([sid], DAY)) == sorted((sid, p) for p in held)
    setup.close()


def test_a_retry_of_an_alert_carries_its_own_papers_and_never_another(store: Store) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    alert = alert_claims(store, sid)
    claim = alert("1", "1", "2")
    assert claim is not None
    store.ledger.mark_failed(claim, NOW, error="451", code=451, retry_at=NOW)
    retry = alert("1", "1", "2", "3")
    assert retry is not None and retry.message_id == claim.message_id
    assert retry.paper_ids == ("1", "2")
    store.ledger.mark_failed(retry, NOW, error="451", code=451, retry_at=NOW)
    assert alert("1", "3") is None
    again = alert("1", "2")
    assert again is not None and again.paper_ids == ("2",), "one may be left out"


def test_an_alert_left_sending_is_resumed_as_it_was_by_a_request_naming_its_papers(
    store: Store,
) -> None:
    sid = store.sync_subscribers([sub("ada@example.org")]).ids["ada@example.org"]
    alert = alert_claims(store, sid)
    first = alert("1", "1", "2")
    assert first is not None
    later = NOW + store.ledger.lease + timedelta(seconds=1)
    assert alert("1", "1", "3", at=later) is None, "it knows not what the message holds"
    resumed = alert("1", "2", "1", at=later)
    assert resumed is not None and resumed.resumed
    assert (resumed.message_id, resumed.paper_ids) == (first.message_id, ("1", "2"))


def _open_when_all_are_ready(url: str, ready: Any, errors: Any) -> None:
    ready.wait()
    try:
        Store(url).sync_subscribers([])
    except Exception as exc:  # reported to the test, which fails with it
        errors.put(repr(exc))


def open_at_once(url: str, processes: int) -> str | None:
    """Open a store on ``url`` in that many processes at the same moment; the first error."""
    context = multiprocessing.get_context("fork")
    errors, ready = context.Queue(), context.Barrier(processes)
    workers = [
        context.Process(target=_open_when_all_are_ready, args=(url, ready, errors))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    return None if errors.empty() else str(errors.get())


def test_processes_opening_a_new_database_at_once_all_get_in(tmp_path: Path) -> None:
    """Turning a new file into WAL needs it to itself, and SQLite does not wait for that."""
    for round_ in range(30):
        assert open_at_once(f"sqlite:///{tmp_path}/new{round_}.db", 8) is None


def test_processes_creating_the_tables_of_a_new_postgres_database_at_once_all_get_in(
    postgres_url: str,  # noqa: F811  (fixture)
) -> None:
    """PostgreSQL reports a table created meanwhile as a unique violation in its catalogue."""
    for _ in range(5):
        engine = create_engine(postgres_url)
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
        assert open_at_once(postgres_url, 6) is None


def test_a_database_that_cannot_be_reached_is_one_line_without_the_password() -> None:
    url = f"postgresql+psycopg://reader:s3cret@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(BotError) as failed:
        Store(url)
    message = str(failed.value)
    assert not isinstance(failed.value, ConfigError)  # the setting may be right: the server is down
    assert message.startswith(
        "cannot open the database 'postgresql+psycopg://reader:***@127.0.0.1:"
    )
    assert "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [("postgresql+psycopg://u:p@h/db", "'postgresql+psycopg://u:***@h/db'"),
     ("postgresql://u:p@h:notaport/db", "'postgresql://***@h:notaport/db'"),
     ("postgresql//u:s3cret@h/db", "'postgresql//***@h/db'"),
     ("postgresql+psycopg://u:p@ss@h/db", "'postgresql+psycopg://***@***@h/db'"),
     ("postgresql+psycopg://u@h/db?password=hunter2&sslmode=require",
      "'postgresql+psycopg://u@h/db?password=***&sslmode=require'"),
     ("postgresql+psycopg://u@h/db?sslpassword=keypass",
      "'postgresql+psycopg://u@h/db?sslpassword=***'"),
     ("sqlite:///x.db", "'sqlite:///x.db'")],
)  # fmt: skip
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_malformed_database_url_is_a_bad_setting() -> None:
    with pytest.raises(
        ConfigError, match=r"PAPERBOT_DATABASE_URL: cannot open 'postgresql://\*\*\*@"
    ):
        Store("postgresql://u:p@127.0.0.1:notaport/db")


def test_no_part_of_a_password_shows_in_the_reason_a_url_is_refused() -> None:
    with pytest.raises(ConfigError) as failed:
        Store("postgresql+psycopg://postgres:p@ss:w0rd@127.0.0.1:5432/db")
    assert "w0rd" not in str(failed.value) and "p@ss" not in str(failed.value)
    with pytest.raises(BotError) as refused:
        Store(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/db?password=hunter2")
    message = str(refused.value)
    assert "hunter2" not in message and "?password=***" in message
    assert "(PAPERBOT_DATABASE_URL)" in message, "the setting to check is named"


def test_a_value_libpq_refuses_is_a_bad_setting() -> None:
    with pytest.raises(ConfigError, match='invalid sslmode value: "bogus"'):
        Store(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/db?sslmode=bogus")


def test_postgresql_connections_time_out_unless_the_url_says_otherwise() -> None:
    assert connect_options("postgresql+psycopg://u@h/db") == {"connect_timeout": 10}
    assert connect_options("postgresql+psycopg://u@h/db?connect_timeout=3") == {}


def test_an_option_the_driver_does_not_know_is_a_bad_setting() -> None:
    url = f"postgresql+psycopg://u:s3cret@127.0.0.1:{free_port()}/db?sslmod=require"
    with pytest.raises(ConfigError) as failed:
        Store(url)
    message = str(failed.value)
    assert "PAPERBOT_DATABASE_URL: cannot open 'postgresql+psycopg://u:***@" in message
    assert '"sslmod"' in message and "s3cret" not in message


def test_a_database_that_cannot_be_reached_is_told_in_one_line_without_the_password() -> None:
    engine = create_engine(f"postgresql+psycopg://paperbot:hunter2@127.0.0.1:{free_port()}/bot")
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    reason = unavailable(refused.value)
    assert reason is not None and reason.startswith("connection failed: ")
    assert reason.endswith("Connection refused") and "\n" not in reason
    quoted = OperationalError("SELECT 1", {}, Exception("no route to postgresql://u:hunter2@db/x"))
    assert unavailable(quoted) == "no route to postgresql://u:***@db/x"


def test_a_query_the_database_rejects_is_not_an_outage() -> None:
    assert unavailable(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))) is None
    for bug in ("no such column: last_error", "no such table: runs", 'near "selec": syntax error'):
        assert unavailable(OperationalError("SELECT", {}, Exception(bug))) is None, bug
    locked = OperationalError("UPDATE", {}, Exception("database is locked"))
    assert unavailable(locked) == "database is locked"
    assert unavailable(ValueError("bad value")) is None


def test_a_row_is_next_tried_at_its_retry_time_or_when_its_lease_ends() -> None:
    """A retry claimed again keeps its old retry time: the lease, not that, says when next."""
    retry, lease = NOW - timedelta(minutes=30), NOW + timedelta(minutes=5)
    row = Delivery(
        subscriber_id=1, digest_date=DAY, status=SENDING, next_attempt_at=retry,
        lease_until=lease, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    assert row.next_try == lease
    assert "sent again after 2026-11-25 08:05:00 UTC" in row.meaning()
    row.status = TEMP_FAILED
    assert row.next_try == retry and row.meaning() == "waiting for its next retry"


def test_papers_between_reads_each_paper_as_stored_every_field_given_or_not(store: Store) -> None:
    """The window read as plain columns gives each paper exactly as its row does, with its
    list date and when it was first stored: every optional field set, and none."""
    full = Paper(
        id="2611.00001", title="Full", abstract="Every field.", authors=("Ada", "Lin Okafor"),
        url="https://arxiv.org/abs/2611.00001", pdf_url="https://arxiv.org/pdf/2611.00001",
        published=datetime(2026, 11, 24, 17, 30, tzinfo=UTC), categories=("cs.LG", "cs.CL"),
        upvotes=12, source="arxiv,hf", comments=3, hf_url="https://huggingface.co/papers/x",
        code_url="https://example.org/code", project_url="https://example.org",
        ai_summary="A summary.", keywords=("scans", "memory"),
    )  # fmt: skip
    bare = Paper(id="2611.00002", title="Bare", abstract="")
    store.save_papers([bare, full], DAY - timedelta(days=1), NOW - timedelta(days=1))
    store.save_papers([paper("2611.00003")], DAY, NOW)
    store.save_papers([paper("2611.00004")], DAY + timedelta(days=1), NOW + timedelta(days=1))
    window = store.papers_between(DAY - timedelta(days=1), DAY)
    assert [item.paper.id for item in window] == ["2611.00001", "2611.00002", "2611.00003"]
    assert [(item.paper, item.list_date, item.first_seen) for item in window] == [
        (full, DAY - timedelta(days=1), NOW - timedelta(days=1)),
        (bare, DAY - timedelta(days=1), NOW - timedelta(days=1)),
        (paper("2611.00003"), DAY, NOW),
    ]
    assert window == [store.stored_paper(item.paper.id) for item in window], "as its row reads"
