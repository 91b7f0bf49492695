"""The worker's periodic run: alerts for new papers, digests that are due, retries that are due.

Every call works from the ledger, so a sweep can be repeated, interrupted or run by two
processes without sending anything twice.

Alerts: the papers that fired for a subscriber since the previous sweep go out together, in one
email (the first ``max_papers`` in full, then up to ``MORE_LISTED`` by title; any others go in
the next sweep's), in the order they were listed.
Its ledger row is keyed by the latest list date of its papers and its first paper, and holds its
papers alone (see ``bot.store.ledger``): a paper is in one alert at most, and an alert that
failed for now, or whose sender died, goes again as that row, with its own papers, while new
papers go in a new alert.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot import schedule
from bot.alerts import AlertHit, Among, alert_hits, unfired
from bot.candidates import Target
from bot.delivery import DeliveryOptions, Job, deliver
from bot.delivery_jobs import DeliveryReport, Outcome
from bot.jobs import alert_job
from bot.models import Paper, Subscriber
from bot.pipeline import (
    CORPUS_DAYS,
    Deps,
    SendOptions,
    SendReport,
    no_digest,
    send_to_targets,
)
from bot.refusals import domains_of
from bot.render import MORE_LISTED
from bot.stopping import in_thread
from bot.store import Store
from bot.store.runs import process_exists, this_machine
from bot.store.tables import Delivery

ALERT_WINDOW_DAYS = 1  # papers from today's and yesterday's lists can fire alerts
Roster = Mapping[int, Subscriber]
TRIED = ("sent", "failed", "unknown")
"""Outcomes of a message the run tried to send."""


class Alerting:
    """The papers alerts are read among (``bot.alerts.Among``), as a digest due today reads its
    keywords: the stored papers of the ``CORPUS_DAYS`` before today and later, with what the
    subscribers watching wrote. Kept from one sweep to the next while these stay the same: no
    list was stored since (``Store.lists_stored``), nor did the words or the window move."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] = ()
        self._among: Among | None = None

    async def among(
        self, deps: Deps, today: date, watchers: Iterable[Subscriber], papers: Mapping[str, Paper]
    ) -> Among:
        """Among the papers of today's window, and ``papers`` (those checked) too.

        Reading them again takes about a second per 10,000 stored papers: it is done in a
        thread, so that the event loop (messages in flight, the scheduler) goes on meanwhile,
        and that a stop does not wait for it. The lists are read before the papers: a list
        stored in between is read again at the next sweep, never missed."""
        first = today - timedelta(days=CORPUS_DAYS)
        written = tuple(text for sub in watchers for text in sub.interests.written)
        key = (first, deps.store.lists_stored(), written)
        among = self._among
        if among is None or key != self._key or not among.ids.issuperset(papers):
            checked = list(papers.values())
            among = await in_thread(_among_window, deps.store, first, checked, written)
            self._among, self._key = among, key
        return among


def _among_window(
    store: Store, first: date, papers: list[Paper], written: tuple[str, ...]
) -> Among:
    """Among the stored papers listed from ``first`` on, and ``papers``: read from the database
    and analysed (in a thread: see ``Alerting.among``)."""
    window = [item.paper for item in store.papers_between(first, date.max)]
    return Among.of([*window, *papers], written)


async def send_alerts(
    deps: Deps, roster: Roster, now: datetime, alerting: Alerting, suppressed: Container[str],
    domains: int,
) -> DeliveryReport:  # fmt: skip
    """One alert email per subscriber (not ``suppressed``) holding every paper that fired a rule
    and is in no alert yet, and the alerts due again; their papers are then marked sent.
    ``domains``: how many recipient domains the roster has (``DeliveryOptions.domains``); the
    papers are read among those ``alerting`` gives."""
    watchers = {
        sid: sub
        for sid, sub in roster.items()
        if sub.alerts and sub.email.lower() not in suppressed
    }
    if not watchers:
        return DeliveryReport()
    today = now.date()
    first = today - timedelta(days=ALERT_WINDOW_DAYS)
    recent = deps.store.papers_between(first, date.max)
    deps.store.ledger.settle_old_alerts(first, now)
    rows = deps.store.ledger.alert_rows(list(watchers), first)
    due: dict[int, dict[int | None, Delivery]] = {}
    for (sid, _paper), row in rows.items():
        if _open(row, now):
            due.setdefault(sid, {})[row.id] = row
    papers = {item.paper.id: item.paper for item in recent}
    again = {paper for by_id in due.values() for row in by_id.values() for paper in row.paper_ids}
    if earlier := again - papers.keys():  # listed before the window, in a row dated within it
        papers |= deps.store.papers_by_id(earlier)
    among = await alerting.among(deps, today, watchers.values(), papers)
    listed = {item.paper.id: item.list_date for item in recent}
    sent = deps.store.sent_paper_ids(watchers, papers)
    jobs = []
    for sid, sub in watchers.items():
        alert = _Alerts(deps, sid, sub, now, among)
        reached = sent.get(sid, set())
        for row in due.get(sid, {}).values():
            jobs += alert.again(row, papers, reached)
        fresh = [
            item.paper for item in recent
            if item.paper.id not in reached and (sid, item.paper.id) not in rows
        ]  # fmt: skip
        jobs += alert.new(fresh, listed)
    if not jobs:
        return DeliveryReport()
    left = iter(jobs)
    report = await deliver(deps, left, DeliveryOptions(domains=domains))
    report.unclaimed += sum(1 for _ in left)  # delivery stopped before taking them
    return report


class _Alerts:
    """The alert jobs of one subscriber in one sweep."""

    def __init__(
        self, deps: Deps, sid: int, subscriber: Subscriber, now: datetime, among: Among
    ) -> None:
        self.deps, self.sid, self.subscriber, self.among = deps, sid, subscriber, among
        self.now, self.day = now, now.astimezone(subscriber.zone).date()

    def new(self, fresh: list[Paper], listed: Mapping[str, date]) -> list[Job]:
        """The alert for the ``fresh`` papers (in no alert, never sent) that fire a rule, in
        their order: keyed by their latest list date and its first paper."""
        # as many as one email shows (in full, then by title): the others go in the next one
        shown = self.subscriber.max_papers + MORE_LISTED
        hits = alert_hits(self.subscriber, fresh, self.among)[:shown]
        if not hits:
            return []
        key = (self.sid, max(listed[hit.paper.id] for hit in hits), hits[0].paper.id)
        return [self._job(key, {hit.paper.id: hit for hit in hits}, [h.paper.id for h in hits])]

    def again(self, row: Delivery, papers: Mapping[str, Paper], reached: set[str]) -> list[Job]:
        """The alert of ``row`` (a due retry, or abandoned by its sender), again with its own
        papers. A retry leaves out those that ``reached`` the subscriber since (in a digest); a
        resumed message is sent again as it was. It goes when one of the papers left still
        fires a rule; otherwise it stays as it is (a failed one is given up once its window
        passes), and they go in the digest."""
        held = [papers[paper] for paper in row.paper_ids if paper in papers]
        fired = {hit.paper.id: hit for hit in alert_hits(self.subscriber, held, self.among)}
        left = [paper.id for paper in held if paper.id not in reached]
        if not any(paper in fired for paper in left):
            return []
        hits = {paper.id: fired.get(paper.id) or unfired(paper) for paper in held}
        chosen = list(hits) if row.abandoned(self.now) else left
        return [self._job((self.sid, row.digest_date, row.ref), hits, chosen)]

    def _job(
        self, key: tuple[int, date, str], hits: Mapping[str, AlertHit], paper_ids: list[str]
    ) -> Job:
        deps = self.deps
        return alert_job(
            deps.settings, deps.renderer, deps.clock, key, self.subscriber, self.day, hits,
            paper_ids,
        )  # fmt: skip


def _open(row: Delivery, now: datetime) -> bool:
    """Whether an alert row may go again: a due retry, or a send left behind."""
    return row.retry_due(now) or row.left_behind(now, this_machine(), process_exists)


@dataclass(frozen=True, slots=True)
class Catchup:
    """What a sweep makes up for besides the sends due at its time, as the sweeps before it
    left it (see ``sweep``)."""

    after: datetime | None = None
    """When the last sweep that reached the digests started (None after a start): only sends
    since then are caught up."""
    waiting: tuple[tuple[int, date], ...] = ()
    """The digests (subscriber id, date) left waiting for papers, each subscriber's latest (see
    ``_latest_waiting``): due again at the next sweep."""
    unnamed: Mapping[int, date] = field(default_factory=dict)
    """The local date of each subscriber whose send time a sweep saw pass on a day their
    frequency named no digest (see ``schedule.due``)."""

    def swept(
        self, started: datetime, roster: Roster, waiting: Iterable[tuple[int, date]]
    ) -> Catchup:
        """After a sweep that reached the digests, started at ``started`` over ``roster``,
        which left ``waiting`` for papers."""
        unnamed = {**self.unnamed, **schedule.passed_unnamed(roster.items(), started)}
        return Catchup(started, tuple(waiting), unnamed)


def _tried(outcomes: Iterable[Outcome]) -> bool:
    """Whether a run tried to send any message (see ``TRIED``)."""
    return any(o.status in TRIED for o in outcomes)


def _latest_waiting(digests: Iterable[tuple[int, date]]) -> list[tuple[int, date]]:
    """Of the digests (subscriber id, date) a sweep leaves waiting for papers, each subscriber's
    latest, which will carry every paper since the previous digest: a due retry and a new
    digest of one subscriber wait as one."""
    return sorted({sid: day for sid, day in sorted(digests)}.items())


Due = dict[tuple[int, date], Subscriber]
"""Digests by (subscriber id, date)."""


def _new_digests(deps: Deps, roster: Roster, now: datetime, catchup: Catchup) -> Due:
    """The digests of ``roster`` due now that the ledger does not settle yet. A digest row for
    a date settles that date and every earlier one (see ``schedule.due``): a digest sent by
    hand ahead of its time is not followed by one for the send before it.

    A digest left waiting for papers is due again, unless a later one of its subscriber is
    due or in the ledger (that one carries every paper since the previous digest, as after
    downtime) or their frequency no longer names its date.
    """
    recorded = deps.store.ledger.latest_digests()
    found = schedule.due(roster.items(), now, recorded, catchup.after, catchup.unnamed)
    due = {(sid, day): sub for sid, sub, day in found}
    latest = {sid: day for sid, day in due}
    for sid, day in catchup.waiting:
        sub = roster.get(sid)
        settled = schedule.covered(day, recorded.get(sid)) or latest.get(sid, day) > day
        if sub is not None and sub.sends_on(day) and not settled:
            due.setdefault((sid, day), sub)
    return due


def _mailed(roster: Roster, suppressed: Container[str]) -> Roster:
    """The subscribers who may get a digest: not those who get none whatever the papers (a
    ``suppressed`` address, a profile without interests: see ``no_digest``). They are left out
    before any matching: nothing would settle their digest, so each sweep would report it again
    (the worker names them once, when it adopts the profiles)."""
    return {sid: sub for sid, sub in roster.items() if no_digest(sub, suppressed) is None}


def _due_digests(
    deps: Deps, roster: Roster, now: datetime, catchup: Catchup, suppressed: Container[str]
) -> tuple[Due, Due]:
    """Of the subscribers who may get a digest (see ``_mailed``): the digests due now that the
    ledger does not settle yet (see ``_new_digests``), and the failed ones, not among those,
    whose retry time has come."""
    roster = _mailed(roster, suppressed)
    new = _new_digests(deps, roster, now, catchup)
    retries: Due = {}
    for row in deps.store.ledger.due_retries(now):
        key = (row.subscriber_id, row.digest_date)
        if row.kind == "digest" and row.subscriber_id in roster and key not in new:
            retries.setdefault(key, roster[row.subscriber_id])
    return new, retries


def held_back(deps: Deps, roster: Roster, now: datetime, catchup: Catchup = Catchup()) -> int:
    """How many digests a sweep at ``now`` would find due with no ledger row yet (``catchup``
    as for ``sweep``): while email delivery pauses, they wait for its end unseen by the ledger.
    An upper bound: one with nothing to send (no match, no note wanted) is counted too, as
    only matching tells, and that is left to the sweep after the pause."""
    roster = _mailed(roster, deps.store.suppressed_emails())
    return len(_new_digests(deps, roster, now, catchup))


async def sweep(
    deps: Deps, roster: Roster, now: datetime, alerting: Alerting | None = None,
    *, sources_down: bool = False, listing: bool = False, catchup: Catchup = Catchup(),
) -> SendReport:  # fmt: skip
    """Alerts first (so the digest does not repeat them), then due digests and retries.

    ``catchup`` is what the sweeps before it left: only sends since the last one that went
    through are caught up, besides the digests waiting for papers; nor the sends of today that
    a sweep saw pass on a day the frequency did not name, whatever it names now. While
    ``sources_down`` (every source failed its last fetch), a digest with no new papers waits
    rather than telling its subscriber that nothing matched. While ``listing`` (the lists are
    being fetched at start-up), every due digest waits for them: only retries go out. The
    report's ``waiting`` holds each subscriber's latest digest left waiting. When sending the
    alerts stopped (the server is unreachable, or shutting down), the digests wait for a later
    sweep.
    """
    suppressed = deps.store.suppressed_emails()  # once: alerts and digests both leave them out
    domains = domains_of(roster.values())
    alerts = await send_alerts(deps, roster, now, alerting or Alerting(), suppressed, domains)
    report = SendReport()
    if alerts.stopped:  # only a stopped run releases messages
        report.add(alerts)
        return report
    new, retries = _due_digests(deps, roster, now, catchup, suppressed)
    held = list(new) if listing else []
    due = retries if listing else new | retries
    targets = [Target(sub, *key) for key, sub in due.items()]
    options = SendOptions(
        retry_now=False, fetch_missing=False, wait_for_papers=sources_down, domains=domains,
    )  # fmt: skip
    if targets:
        report = await send_to_targets(deps, targets, options)
    if report.refused_all is None and alerts.refused_all is not None:
        report.refused_all = alerts.refused_all
        report.refused = "alert" if _tried(report.outcomes) else "message"
    elif report.refused_all is not None and alerts.refused_all is None:
        report.refused = "digest" if _tried(alerts.outcomes) else "message"
    report.outcomes[:0] = alerts.outcomes
    report.waiting = _latest_waiting([*held, *report.waiting])
    return report
