"""Which stored papers each digest of a run may hold: the rule that shares out the batches of
papers among the digests, never twice to one subscriber and none falling between two.

Nothing here reads the store, the clock or the processes: ``bot.pipeline.candidates`` reads
what the rule needs (the papers sent, the unsent ledger rows and which of them no run will
finish, when each subscriber's previous digest was made) and hands it in. The rule works on
the store's records as read (stored papers, ledger rows), so rows made in memory test it.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot.models import Paper, Subscriber
from bot.store import StoredPaper
from bot.store.tables import OUTCOME_UNKNOWN, PERM_FAILED, SENDING, TEMP_FAILED, Delivery

if TYPE_CHECKING:
    from bot.jobs import Lookup

CATCH_UP_DAYS = 7  # never reach further back than this, however long the downtime


@dataclass(frozen=True, slots=True)
class Target:
    """One digest to consider: a subscriber, their stored id, and the digest date."""

    subscriber: Subscriber
    sid: int
    day: date

    @property
    def key(self) -> tuple[int, date]:
        """Which digest this is: a subscriber may have several dates to send in one run."""
        return self.sid, self.day


@dataclass(frozen=True)
class Candidates:
    """Per target (see ``share_out``): the papers its digest may hold, and how many papers of
    its lists had reached the subscriber already (in alerts). Targets may share one tuple."""

    papers: dict[tuple[int, date], tuple[Paper, ...]]
    earlier: dict[tuple[int, date], int]
    resumed: Mapping[tuple[int, date], tuple[str, ...]] = field(default_factory=dict)
    """The papers of each target whose message was left ``sending`` (see ``resuming``)."""

    def listed(self, key: tuple[int, date]) -> bool:
        """Whether the target's lists hold any paper, new to the subscriber or not."""
        return bool(self.papers[key] or self.earlier[key])


def share_out(
    targets: Sequence[Target],
    stored: Sequence[StoredPaper],
    sent: Mapping[int, Set[str]],
    unsent: Unsent,
    previous: Mapping[date, Mapping[int, datetime]],
) -> Candidates:
    """Per target: papers of ``stored`` stored since the subscriber's previous digest and never
    ``sent`` to them (by subscriber id). ``previous`` says, for each date of ``targets``, when
    each subscriber's latest digest before it was made.

    A first digest covers the lists from the previous date the subscriber's frequency names on
    (the day before for a daily digest, a week for a weekly one). After that a paper belongs
    to the first digest made after it was stored, whatever its list date (time zones and late
    feeds put list dates ahead of some subscribers' dates), so no paper falls between two. When
    one run makes several digests for a subscriber (a retried one and today's), each paper goes
    to the earliest of them whose date is not before the paper's list date, else to the last.

    Nor does a paper go in two digests: those another email of the subscriber holds and will
    carry are left out, and those of a digest that failed for good are offered again (see
    ``Unsent``).
    """
    by_id = {item.paper.id: item for item in stored} if unsent.rows else {}
    days: dict[int, list[date]] = {}
    for target in targets:
        days.setdefault(target.sid, []).append(target.day)
    owners = {sid: _owner(sorted(dates)) for sid, dates in days.items()}
    # Whether a paper belongs to a target depends only on its list date and when it was stored,
    # and a day's papers share both (one fetch stores a day's list): so it is decided once per
    # such batch, and the targets that take the same batches share one tuple of papers.
    batches = sorted({(item.list_date, item.first_seen) for item in stored})
    lists: dict[tuple[tuple[date, datetime], ...], tuple[tuple[Paper, ...], set[str]]] = {}
    found = Candidates({}, {})
    for target in targets:
        since = previous[target.day].get(target.sid)
        earliest = (
            target.day - timedelta(days=CATCH_UP_DAYS)
            if since
            else target.subscriber.previous_due(target.day)
        )
        own = owners[target.sid]
        taken = tuple(
            (listed_on, stored_at)
            for listed_on, stored_at in batches
            if listed_on >= earliest
            and (since is None or stored_at > since)
            and own(listed_on) == target.day
        )
        if taken not in lists:
            among_taken = set(taken)
            papers = tuple(i.paper for i in stored if (i.list_date, i.first_seen) in among_taken)
            lists[taken] = papers, {paper.id for paper in papers}
        listed, ids = lists[taken]
        seen = unsent.taken(target, sent.get(target.sid))
        if seen and not seen.isdisjoint(ids):
            found.papers[target.key] = tuple(paper for paper in listed if paper.id not in seen)
        else:
            found.papers[target.key] = listed
        found.earlier[target.key] = len(listed) - len(found.papers[target.key])
        if back := unsent.freed(target.sid, since) - seen - ids:
            found.papers[target.key] += tuple(
                item.paper
                for item in (by_id[i] for i in sorted(back) if i in by_id)
                if item.list_date >= earliest and own(item.list_date) == target.day
            )
    return found


@dataclass(frozen=True, slots=True)
class Unsent:
    """The digest rows of a run's subscribers whose papers were not sent and their alert rows
    another run is sending (by subscriber id), and which digests the run makes (``made``): they
    decide which papers a new digest may hold."""

    rows: Mapping[int, Sequence[Delivery]]
    made: Container[tuple[int, date]]

    @classmethod
    def of(
        cls, rows: Iterable[Delivery], left_behind: Container[int | None], targets: Sequence[Target]
    ) -> Unsent:
        """By subscriber, the unsent ``rows`` of the subscribers of ``targets`` (their digest
        rows whose papers were not sent and their alert rows being sent, ``Ledger.unsent_rows``)
        but the alert rows ``left_behind`` (row ids: no run will finish them). An alert left
        behind is not one: the worker sends it again before its digests while its papers still
        fire, else they go in the digest."""
        by_sid: dict[int, list[Delivery]] = {}
        for row in rows:
            if row.kind == "digest" or row.id not in left_behind:
                by_sid.setdefault(row.subscriber_id, []).append(row)
        return cls(by_sid, {t.key for t in targets})

    def taken(self, target: Target, sent: Set[str] | None) -> Set[str]:
        """The papers ``target`` may not hold: those ``sent`` to the subscriber, and those
        another email of theirs holds and will carry. That is an alert another run is sending
        (its papers were in no alert when that run looked), another digest being sent (it is
        sent again as it was after a crash), or one waiting for a retry that this run does not
        make (the retries a run makes share out the papers afresh, see ``share_out``)."""
        held = {
            paper
            for row in self.rows.get(target.sid, ())
            if row.kind != "digest"
            or (row.digest_date != target.day and (row.status == SENDING or self._retried(row)))
            for paper in row.paper_ids
        }
        if not held:
            return sent or frozenset()
        return held | sent if sent else held

    def freed(self, sid: int, since: datetime | None) -> set[str]:
        """The papers of the subscriber's digests that failed for good after their digest
        before (made at ``since``) was made, and surely never reached them: those digests held
        them, so the digests made meanwhile did not. They are free again for the next one. A
        digest that may have reached them (``Delivery.maybe_sent``; a row written before that
        column says so in its error) keeps them."""
        return {
            paper
            for row in self.rows.get(sid, ())
            if row.status == PERM_FAILED
            and not row.maybe_sent
            and not (row.last_error or "").startswith(OUTCOME_UNKNOWN)
            and (since is None or row.updated_at > since)
            for paper in row.paper_ids
        }

    def _made(self, row: Delivery) -> bool:
        return (row.subscriber_id, row.digest_date) in self.made

    def _retried(self, row: Delivery) -> bool:
        """Whether ``row`` waits for a retry that this run does not make."""
        return row.status == TEMP_FAILED and not self._made(row)


def resuming(
    found: Candidates, rows: Mapping[tuple[int, date], Delivery], lookup: Lookup
) -> Candidates:
    """``found``, with the papers of each target whose ledger row (of ``rows``) is ``sending``
    among its candidates, read with ``lookup`` (and the target in ``Candidates.resumed``).

    Its message was taken by a run that may have sent it and died, or another run sends it now.
    A claim that takes it over sends it again exactly as it was, whatever became of its papers
    since (sent in an alert, no longer matching): its message must be able to show them, and
    the digest is not settled as skipped before the claim.
    """
    held = {
        key: tuple(row.paper_ids)
        for key, row in rows.items()
        if key in found.papers and row.status == SENDING
    }
    stored = lookup([i for ids in held.values() for i in ids]) if held else {}
    papers = dict(found.papers)
    for key, ids in held.items():
        known = {paper.id for paper in papers[key]}
        papers[key] += tuple(stored[i] for i in ids if i not in known and i in stored)
    return replace(found, papers=papers, resumed=held)


def _owner(days: list[date]) -> Callable[[date], date]:
    """Which of one subscriber's digest dates (sorted) a paper listed on a date belongs to."""
    if len(days) == 1:
        return lambda listed: days[0]
    return lambda listed: next((day for day in days if day >= listed), days[-1])
