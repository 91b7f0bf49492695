"""The rule that shares stored papers out among a run's digests, applied to what the store
would say (no database): papers sent, unsent ledger rows, previous digests.

Every paper and profile here is fictional and written for these tests.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import UTC, date, datetime

from bot.candidates import Candidates, Target, Unsent, share_out
from bot.models import Paper, Subscriber
from bot.store import StoredPaper
from bot.store.tables import SENDING, Delivery

DAY = date(2026, 11, 25)
STORED_AT = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
PAPERS = [Paper(f"2611.1000{n}", f"Study {n}", "On sparse routing.") for n in (1, 2)]
ADA = Target(Subscriber(email="ada@example.org"), 1, DAY)
BOB = Target(Subscriber(email="bob@example.org"), 2, DAY)


def shared(
    targets: list[Target],
    sent: dict[int, set[str]] | None = None,
    rows: Iterable[Delivery] = (),
    left_behind: Container[int | None] = frozenset(),
) -> Candidates:
    """Share out the day's list (both papers, stored in one fetch) among first digests."""
    stored = [StoredPaper(paper, DAY, STORED_AT) for paper in PAPERS]
    unsent = Unsent.of(rows, left_behind, targets)
    return share_out(targets, stored, sent or {}, unsent, {DAY: {}})


def ids(found: Candidates, target: Target) -> list[str]:
    return [paper.id for paper in found.papers[target.key]]


def test_a_paper_sent_to_a_subscriber_is_no_candidate_of_theirs_but_stays_one_for_others() -> None:
    """Ada's alert carried the first paper: her digest counts it as come earlier; Bob's, made
    from the same list, still offers it."""
    found = shared([ADA, BOB], sent={ADA.sid: {PAPERS[0].id}})
    assert ids(found, ADA) == [PAPERS[1].id] and found.earlier[ADA.key] == 1
    assert ids(found, BOB) == [p.id for p in PAPERS] and found.earlier[BOB.key] == 0


def test_an_alert_being_sent_keeps_its_papers_out_of_the_digest_until_no_run_will_finish_it() -> (
    None
):
    """Another run is sending Ada an alert of the first paper: her digest leaves it out (the
    alert carries it). Once that run is gone (the row left behind), the paper is hers again."""
    alert = Delivery(
        id=7, subscriber_id=ADA.sid, kind="alert", digest_date=DAY, ref=PAPERS[0].id,
        status=SENDING, paper_ids=[PAPERS[0].id], created_at=STORED_AT, updated_at=STORED_AT,
    )  # fmt: skip
    assert ids(shared([ADA], rows=[alert]), ADA) == [PAPERS[1].id]
    assert ids(shared([ADA], rows=[alert], left_behind={7}), ADA) == [p.id for p in PAPERS]
