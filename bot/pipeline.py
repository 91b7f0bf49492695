"""One run, as a straight line: fetch -> store -> match -> render -> deliver -> record.

Every dependency is passed in (store, mailer, renderer, fetch, clock), so the same code serves the
CLI, the worker and the tests. Nothing here reads argv or the environment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    Awaitable,
    Callable,
    Container,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from bot import matching
from bot.candidates import CATCH_UP_DAYS, Candidates, Target, Unsent, resuming, share_out
from bot.collector import quiet_collector
from bot.delivery import TAKEN_OVER, DeliveryOptions, Job, deliver, forced_note
from bot.delivery import prepare as prepare_delivery
from bot.delivery_jobs import DeliveryReport, Outcome
from bot.errors import DeliveryError, UnwritableDeliveryError
from bot.jobs import Clock, build_digest, claimed_digest, compose, digest_job
from bot.mailer import Mailer
from bot.message import new_message_id
from bot.models import Digest, Match, Paper, Subscriber
from bot.refusals import domains_of
from bot.render import Renderer
from bot.settings import Settings
from bot.sources import FetchReport, SourceOutcome
from bot.stopping import Stopped, in_thread, unless_stopped
from bot.store import Store, StoredPaper
from bot.store.runs import process_exists, this_machine
from bot.store.tables import (
    FINAL_STATES,
    SENDING,
    SENT,
    STATE_MEANING,
    Delivery,
)
from bot.text import plural

log = logging.getLogger(__name__)

CORPUS_DAYS = 30  # window of stored papers used for document frequencies
NOTHING_MATCHED = "nothing matched and send_empty is false"
WOULD_SKIP = "nothing matched: would skip"
"""How a dry run says a digest would not be sent."""
WOULD_FAIL = "would fail"
"""How a dry run says a digest would fail (see ``bot.jobs.claimed_digest``)."""
SUPPRESSED = "address is suppressed"
NO_INTERESTS = "no interests in the profile"
"""How a send reports a digest that goes to nobody whatever the papers (see ``no_digest``)."""
STOPPED_BEFORE_DELIVERY = "shutting down before any digest was sent"
"""Why a run stopped while it was still fetching papers or matching: it sends no digest then
(a worker's sweep may have sent its alerts)."""


Fetch = Callable[[date], Awaitable[FetchReport]]
"""Fetches one day's lists: the papers, and what each source did."""


@dataclass
class SendReport:
    """The result of a send run: one outcome per subscriber, and what the sources did."""

    outcomes: list[Outcome] = field(default_factory=list)
    sources: list[tuple[date, SourceOutcome]] = field(default_factory=list)
    """What each source did, with the date of the lists it was asked for."""
    stopped: str | None = None
    stopped_by: DeliveryError | None = None
    """The SMTP error that stopped delivery (see ``DeliveryReport``)."""
    waiting: list[tuple[int, date]] = field(default_factory=list)
    """Digests (subscriber id, date) left for a later run: they had no new papers (see
    ``SendOptions.wait_for_papers``), or, in a worker's sweep, the lists being fetched at
    start-up were not in yet."""
    not_due: list[tuple[str, date, str]] = field(default_factory=list)
    """Subscribers a run for each one's today left out, their frequency naming no digest on
    that date: (address, date, why)."""
    released: int = 0
    """Claimed messages given back unsent when delivery stopped: the next run sends them."""
    unclaimed: int = 0
    """Messages that would have gone but were never claimed, delivery having stopped first
    (they have no ledger row): the next run sends them."""
    refused_all: DeliveryError | None = None
    """The refusal the server gave every message of the run (see ``DeliveryReport``); of a
    sweep, every message of its alerts or of its digests (``refused``)."""
    refused: str = "message"
    """Of a sweep, what ``refused_all`` refused every one of: every ``message``, or only every
    ``alert`` or every ``digest`` (the others went out, or failed otherwise)."""

    def tell(self, outcome: Outcome, listener: Callable[[Outcome], None]) -> None:
        """Take in ``outcome`` and pass it on to ``listener`` (the run's ``on_outcome``)."""
        self.outcomes.append(outcome)
        listener(outcome)

    def count(self, status: str) -> int:
        """How many outcomes have this status."""
        return sum(1 for o in self.outcomes if o.status == status)

    def add(self, delivered: DeliveryReport) -> None:
        """Take in what a delivery run did: its outcomes, why it stopped, what it released."""
        self.outcomes.extend(delivered.outcomes)
        self.stopped = self.stopped or delivered.stopped
        self.stopped_by = self.stopped_by or delivered.stopped_by
        self.refused_all = self.refused_all or delivered.refused_all
        self.released += delivered.released
        self.unclaimed += delivered.unclaimed

    @property
    def not_sent(self) -> int:
        """How many messages the run left for the next one: released or never claimed."""
        return self.released + self.unclaimed

    @property
    def would_send(self) -> int:
        """How many of a dry run's digests would have been sent."""
        dry = [o.detail for o in self.outcomes if o.status == "dry-run"]
        return sum(1 for detail in dry if not detail.startswith((WOULD_SKIP, WOULD_FAIL)))

    def summary(self) -> dict[str, Any]:
        """Counts by status plus the source outcomes, for the run record."""
        statuses = ("sent", "skipped", "failed", "unknown", "already", "dry-run")
        return {
            "counts": {s: self.count(s) for s in statuses}
            | {
                "waiting": len(self.waiting),
                "released": self.released,
                "unclaimed": self.unclaimed,
            },
            "sources": [o.summary() | {"day": day.isoformat()} for day, o in self.sources],
            "stopped": self.stopped,
        }


def run_status(report: SendReport) -> str:
    """How a run ended, for the runs table: stopped, failed (some delivery failed) or ok."""
    return "stopped" if report.stopped else ("failed" if report.count("failed") else "ok")


@dataclass(frozen=True, slots=True)
class SendOptions:
    """What the operator asked for."""

    day: date | None = None
    to: str | None = None
    dry_run: bool = False
    force: bool = False
    retry_now: bool = True
    fetch_missing: bool = True
    refetch: bool = False
    wait_for_papers: bool = False
    """Leave out, unrecorded, the digests with no new papers: the sources are failing, so the
    papers they would carry are not in yet (a later run sends them, as after downtime)."""
    domains: int | None = None
    """How many recipient domains the subscribers have in all (``DeliveryOptions.domains``)."""


@dataclass(frozen=True, slots=True)
class Deps:
    """Everything a run touches, passed in. A run's mailer and listeners are decided by what
    starts it (``dataclasses.replace`` gives a run its own)."""

    settings: Settings
    store: Store
    renderer: Renderer
    fetch: Fetch
    clock: Clock
    mailer: Mailer | None = None
    on_outcome: Callable[[Outcome], None] = lambda outcome: None
    on_released: Callable[[int], None] = lambda released: None
    """Hears how many claimed messages delivery gave back unsent, as it gives them back."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    delivering: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while messages are being handed to the mailer: a stop then lets the messages being
    sent finish; before, it only cancels the fetch (see ``send_to_targets``)."""


def digest_day(subscriber: Subscriber, now: datetime) -> date:
    """The subscriber's local date at ``now``."""
    return now.astimezone(subscriber.zone).date()


@dataclass(frozen=True, slots=True)
class FetchSummary:
    """What one fetch stored (``new`` and ``updated`` papers), and what it gave."""

    day: date
    new: int
    updated: int
    report: FetchReport

    @property
    def fetched(self) -> int:
        """How many papers the sources gave."""
        return len(self.report.papers)


async def fetch_and_store(deps: Deps, day: date) -> FetchSummary:
    """Fetch the lists for ``day`` and store them; running it again only updates counts."""
    return store_fetched(deps, day, await deps.fetch(day))


def store_fetched(deps: Deps, day: date, report: FetchReport) -> FetchSummary:
    """Store what fetching the lists for ``day`` gave, and log how it went."""
    new, updated = deps.store.save_papers(report.papers, day, deps.clock())
    summary = FetchSummary(day, new, updated, report)
    if report.all_failed:
        log.warning("no papers fetched for %s: every source failed", day)
    else:
        log.info(
            "fetched %d papers for %s (%d new, %d updated)", summary.fetched, day, new, updated
        )
    return summary


async def ensure_papers(
    deps: Deps, day: date, report: SendReport, *, again: bool = False
) -> str | None:
    """Fetch and store the list for ``day`` unless it is stored already (or ``again``).

    Returns why there is no list for ``day`` when the sources gave no paper (they failed, or
    listed none) and none is stored: telling subscribers that nothing matched, and recording
    it, would be untrue of a list that was never read.
    """
    if not again and deps.store.has_papers_for(day):
        return None
    fetched = (await fetch_and_store(deps, day)).report
    report.sources.extend((day, outcome) for outcome in fetched.outcomes)
    if fetched.papers or deps.store.has_papers_for(day):
        return None
    reasons = [(o.source, o.reason or "no papers") for o in fetched.outcomes]
    said = "; ".join(why if source in why else f"{source}: {why}" for source, why in reasons)
    how = "every source failed" if fetched.all_failed else "no source listed any"
    return f"no papers for {day}: {how} ({said})"


def read_window(deps: Deps, targets: Sequence[Target]) -> list[StoredPaper]:
    """The stored papers the digests of ``targets`` are made from: those ``candidates`` offers
    (listed from ``CATCH_UP_DAYS`` before the first date on) and the corpus ``select`` reads
    among (the ``CORPUS_DAYS`` to the last date), read once."""
    first_day, last_day = min(t.day for t in targets), max(t.day for t in targets)
    first = min(first_day - timedelta(days=CATCH_UP_DAYS), last_day - timedelta(days=CORPUS_DAYS))
    return deps.store.papers_between(first, date.max)


def candidates(
    deps: Deps, targets: Sequence[Target], force: bool, window: Sequence[StoredPaper]
) -> Candidates:
    """Per target: the papers of the stored ``window`` (``read_window``) its digest may hold,
    as ``bot.candidates.share_out`` shares them out, with what it reads from the store: the
    papers already sent, the unsent ledger rows and which of them no run will finish, and when
    each subscriber's previous digest was made."""
    first_day = min(t.day for t in targets)
    since_day = first_day - timedelta(days=CATCH_UP_DAYS)
    stored = [item for item in window if item.list_date >= since_day]
    sids = {t.sid for t in targets}
    # --force sends a digest again, but not the papers an alert carried (they never were in one)
    kind = "alert" if force else None
    sent = deps.store.sent_paper_ids(sids, [item.paper.id for item in stored], kind)
    rows = deps.store.ledger.unsent_rows(sids, first_day - timedelta(days=2 * CATCH_UP_DAYS))
    now, here = deps.clock(), this_machine()
    gone = {row.id for row in rows if row.left_behind(now, here, process_exists)}
    previous = {day: deps.store.last_digest_times(day) for day in {t.day for t in targets}}
    return share_out(targets, stored, sent, Unsent.of(rows, gone, targets), previous)


def select(
    deps: Deps,
    targets: Sequence[Target],
    candidates: Mapping[tuple[int, date], tuple[Paper, ...]],
    window: Sequence[StoredPaper],
) -> dict[tuple[int, date], matching.Selection]:
    """Match each group of subscribers that share the same candidate papers in one call (many
    targets share one tuple of papers: its key is made once), among the papers of the stored
    ``window`` (``read_window``) listed in the ``CORPUS_DAYS`` to the last date."""
    groups: dict[tuple[str, ...], list[Target]] = {}
    keys: dict[int, tuple[str, ...]] = {}
    for target in targets:
        papers = candidates[target.key]
        if (key := keys.get(id(papers))) is None:
            key = keys[id(papers)] = tuple(sorted(p.id for p in papers))
        groups.setdefault(key, []).append(target)
    last_day = max(t.day for t in targets)
    first_day = last_day - timedelta(days=CORPUS_DAYS)
    corpus = [item.paper for item in window if first_day <= item.list_date <= last_day]
    liked = deps.store.papers_by_id(i for t in targets for i in t.subscriber.interests.like)
    result: dict[tuple[int, date], matching.Selection] = {}
    for members in groups.values():
        papers = candidates[members[0].key]
        chosen = matching.select(
            [t.subscriber for t in members], papers, corpus=corpus, liked=liked
        )
        for target in members:
            result[target.key] = chosen[target.subscriber.email]
    return result


def _digest_jobs(
    deps: Deps,
    targets: Iterable[Target],
    selections: Mapping[tuple[int, date], matching.Selection],
    found: Candidates,
    rows: Mapping[tuple[int, date], Delivery],
    options: SendOptions,
    report: SendReport,
) -> Iterator[Job]:
    """The digests to deliver; subscribers with nothing to send are settled (and reported) here,
    unless their message was left ``sending``: its claim decides. A dry run reports each digest
    it would send, ``--force`` sending it again as the ledger ``rows`` say."""

    def settle(target: Target, status: str, detail: str, papers: int = 0) -> None:
        outcome = Outcome(target.subscriber.email, status, papers, detail, target.day)
        report.tell(outcome, deps.on_outcome)

    for target in targets:
        sub = target.subscriber
        digest = build_digest(sub, target.day, selections[target.key], found.earlier[target.key])
        held = found.resumed.get(target.key)
        if nothing_to_send(digest) and held is None:
            if options.dry_run:
                settle(target, "dry-run", WOULD_SKIP)
                continue
            ledger, now = deps.store.ledger, deps.clock()
            created = ledger.record_skipped(target.sid, target.day, now, "nothing matched")
            settle(target, "skipped" if created else "already", "nothing matched")
        elif options.dry_run:
            row, note = rows.get(target.key), f" ({TAKEN_OVER})" if held is not None else ""
            if row is not None and row.forced(options.force):  # as the claim would be
                note = forced_note(row.status == SENT)
            settle(
                target, "dry-run", *_would_send(deps, digest, selections[target.key], held, note)
            )
        else:
            sel, lookup = selections[target.key], deps.store.papers_by_id
            yield digest_job(
                deps.settings, deps.renderer, deps.clock, target.sid, digest, sel, lookup
            )


def _would_send(
    deps: Deps,
    digest: Digest,
    selection: matching.Selection,
    held: Sequence[str] | None,
    note: str,
) -> tuple[str, int]:
    """What a dry run says of a digest that would be sent (with ``note``, as a send would say
    it), and how many papers it holds: those its ledger row ``held`` when it was left
    ``sending`` (it is sent again as it was)."""
    try:
        if held is not None:
            digest = claimed_digest(digest, held, selection, deps.store.papers_by_id)
    except UnwritableDeliveryError as exc:
        return f"{WOULD_FAIL}: {exc}", 0
    message_id = new_message_id(deps.settings.sender)
    compose(deps.settings, deps.renderer, digest, message_id, deps.clock())
    n = len(digest.matches)
    papers = plural(n, "paper") if n else 'a "nothing matched" note'
    return f"would send {papers}{note}", n


def _targets(
    deps: Deps, subscribers: Sequence[Subscriber], ids: Mapping[str, int], options: SendOptions
) -> tuple[list[Target], list[tuple[str, date, str]]]:
    """The digests to send, and (without ``to`` or ``day``) the subscribers left out because
    their frequency names no digest on their date (see ``SendReport.not_due``)."""
    now = deps.clock()
    chosen = [s for s in subscribers if options.to is None or s.email.lower() == options.to.lower()]
    targets, not_due = [], []
    for sub in chosen:
        day = options.day or digest_day(sub, now)
        why = sub.not_due_on(day) if options.to is None and options.day is None else None
        if why is not None:
            not_due.append((sub.email, day, why))
            continue
        targets.append(Target(sub, ids[sub.email.lower()], day))
    return targets, not_due


def nothing_to_send(digest: Digest) -> str | None:
    """Why this digest would not be sent (nothing matched, no note wanted), or None."""
    return None if _goes(digest.subscriber, digest.matches) else NOTHING_MATCHED


def _goes(subscriber: Subscriber, matches: Sequence[Match]) -> bool:
    """Whether a digest of ``matches`` is sent: it holds papers, or a note is wanted."""
    return bool(matches) or subscriber.send_empty


def _never_reached(
    targets: Iterable[Target], selections: Mapping[tuple[int, date], matching.Selection]
) -> int:
    """How many of ``targets``, which delivery stopped before reaching, would have been sent."""
    return sum(1 for t in targets if _goes(t.subscriber, selections[t.key].picked))


def no_digest(subscriber: Subscriber, suppressed: Container[str]) -> str | None:
    """Why ``subscriber`` gets no digest whatever the papers, or None: the address is
    ``suppressed`` (lower-case addresses), or the profile has no interests (nothing could be
    picked for them; their alerts still apply)."""
    if subscriber.email.lower() in suppressed:
        return SUPPRESSED
    if subscriber.interests.empty:
        return NO_INTERESTS
    return None


def not_reached(subscriber: Subscriber, day: date, now: datetime) -> str | None:
    """Why ``subscriber`` gets no digest for ``day`` yet: it is not that date where they are
    (a digest for it now would come before the one of their today); None once it is."""
    if day <= digest_day(subscriber, now):
        return None
    return f"it is not yet {day} where they are ({subscriber.timezone})"


def _screened(
    deps: Deps, targets: list[Target], options: SendOptions
) -> tuple[list[Target], dict[tuple[int, date], Delivery], list[Outcome]]:
    """The targets left to match once those settled (``_not_done``, unless ``options.force``)
    and those that get no digest (``_mailable``) are left out, the ledger rows of their dates,
    and the outcomes of those left out. It reads the ledger and reports nothing: it runs in a
    thread, as the rows of tens of thousands of subscribers take a while to read and sort."""
    rows = deps.store.ledger.digests_on(sorted({t.day for t in targets}))
    outcomes: list[Outcome] = []
    if not options.force:
        targets = _not_done(deps, targets, rows, outcomes, options.dry_run)
    return _mailable(deps, targets, outcomes), rows, outcomes


def _mailable(deps: Deps, targets: list[Target], outcomes: list[Outcome]) -> list[Target]:
    """Leave out (with an outcome ``skipped`` in ``outcomes``) the targets that get no digest
    whatever the papers (see ``no_digest``), or none yet (``not_reached``), before any
    matching. Nothing is recorded: once the address is cleared, the profile has interests or
    the date has come, the next run sends the digest."""
    suppressed, now = deps.store.suppressed_emails(), deps.clock()
    left = []
    for target in targets:
        sub = target.subscriber
        early = not_reached(sub, target.day, now)
        why = no_digest(sub, suppressed) or (early and f"{early}: not sent")
        if why is None:
            left.append(target)
            continue
        outcomes.append(Outcome(target.subscriber.email, "skipped", 0, why, target.day))
    return left


def _not_done(
    deps: Deps,
    targets: list[Target],
    rows: Mapping[tuple[int, date], Delivery],
    outcomes: list[Outcome],
    dry_run: bool = False,
) -> list[Target]:
    """Leave out (with an outcome ``already`` in ``outcomes``) subscribers whose digest for the
    date is already settled. A dry run also leaves out those another live run is sending (a
    real run could not claim them)."""
    left, now, here = [], deps.clock(), this_machine()
    for target in targets:
        row = rows.get((target.sid, target.day))
        live = dry_run and row is not None and row.status == SENDING
        if row is None or (
            row.status not in FINAL_STATES
            and not (live and not row.left_behind(now, here, process_exists))
        ):
            left.append(target)
            continue
        detail = row.meaning() if live else f"{STATE_MEANING[row.status]} for this date"
        detail += f": {row.last_error}" if row.last_error else ""
        outcomes.append(Outcome(target.subscriber.email, "already", 0, detail, target.day))
    return left


def _left_for_later(
    deps: Deps, targets: list[Target], day: date, why: str, report: SendReport
) -> list[Target]:
    """Report the targets of ``day`` as failed (recording nothing) and return the others."""
    for target in targets:
        if target.day == day:
            report.tell(Outcome(target.subscriber.email, "failed", 0, why, day), deps.on_outcome)
    return [t for t in targets if t.day != day]


class Matched(NamedTuple):
    """What ``match_targets`` found: the targets matched, their candidate papers and selections, and
    the keys of the targets that wait for their papers."""

    targets: list[Target]
    found: Candidates
    selections: dict[tuple[int, date], matching.Selection]
    waiting: list[tuple[int, date]]


def match_targets(
    deps: Deps,
    targets: list[Target],
    rows: Mapping[tuple[int, date], Delivery],
    options: SendOptions,
) -> Matched:
    """Each target's candidate papers (``candidates``, ``resuming``) and what matches among
    them (``select``). With ``options.wait_for_papers``, the targets none of whose lists came
    wait for them, unmatched."""
    window = read_window(deps, targets)
    found = resuming(
        candidates(deps, targets, options.force, window), rows, deps.store.papers_by_id
    )
    waiting: list[tuple[int, date]] = []
    if options.wait_for_papers:
        waiting = [t.key for t in targets if not found.listed(t.key)]
        targets = [t for t in targets if found.listed(t.key)]
    selections = select(deps, targets, found.papers, window) if targets else {}
    return Matched(targets, found, selections, waiting)


async def send_digests(
    deps: Deps, subscribers: Sequence[Subscriber], options: SendOptions
) -> SendReport:
    """Send each subscriber's digest for their date; never twice unless ``options.force``.

    A dry run changes nothing but the stored papers: subscribers are not synced.
    """
    if options.dry_run:
        stored = deps.store.subscriber_ids()
        emails = dict.fromkeys(s.email.lower() for s in subscribers)
        ids = {e: stored.get(e) or -n for n, e in enumerate(emails, 1)}
    else:
        ids = deps.store.sync_subscribers(subscribers).ids
    targets, not_due = _targets(deps, subscribers, ids, options)
    report = await send_to_targets(deps, targets, replace(options, domains=domains_of(subscribers)))
    report.not_due = not_due
    return report


async def send_to_targets(deps: Deps, targets: list[Target], options: SendOptions) -> SendReport:
    """Match, render and deliver the digest of each (subscriber, date) target.

    A stop (``deps.stop``) while the missing papers are fetched, or while matching (in a thread,
    off the event loop), ends the run there, reported stopped; once delivery has begun, the
    delivery engine stops the run.
    """
    with quiet_collector():
        return await _send_to_targets(deps, targets, options)


async def _send_to_targets(deps: Deps, targets: list[Target], options: SendOptions) -> SendReport:
    report = SendReport()
    targets, rows, left_out = await asyncio.to_thread(_screened, deps, targets, options)
    for outcome in left_out:
        report.tell(outcome, deps.on_outcome)
    if not targets:
        return report
    if not options.dry_run and deps.mailer is not None:
        prepare_delivery(len(targets))  # what starts workers starts while we fetch and match
    for day in sorted({t.day for t in targets}) if options.fetch_missing else ():
        fetching = ensure_papers(deps, day, report, again=options.refetch)
        try:  # a source that keeps failing is retried for a while: a stop does not wait for it
            missing = await unless_stopped(fetching, deps.stop, f"the fetch for {day}")
        except Stopped:  # nothing is settled yet: the next run sends every digest
            report.stopped = STOPPED_BEFORE_DELIVERY
            return report
        if missing:  # nothing is settled for that date: a later run sends its digests
            targets = _left_for_later(deps, targets, day, missing, report)
    if not targets:
        return report
    try:  # in a thread: seconds of work for many subscribers, that a stop does not wait for
        matched = await unless_stopped(
            in_thread(match_targets, deps, targets, rows, options), deps.stop, "matching"
        )
    except Stopped:
        report.stopped = STOPPED_BEFORE_DELIVERY
        return report
    targets, found, selections, report.waiting = matched
    if not targets:
        return report
    left = iter(targets)  # the targets no job reached yet: none once delivery ran to its end
    jobs = _digest_jobs(deps, left, selections, found, rows, options, report)
    if options.dry_run or deps.mailer is None:
        for _ in jobs:  # dry run: everything is settled while listing the jobs
            pass
        return report
    how = DeliveryOptions(retry_now=options.retry_now, force=options.force, domains=options.domains)
    deps.delivering.set()
    try:
        report.add(await deliver(deps, jobs, how))
    finally:
        deps.delivering.clear()
    report.unclaimed += _never_reached(left, selections)
    return report
