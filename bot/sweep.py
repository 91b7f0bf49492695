"""The worker's periodic run: alerts for new papers, digests that are due, retries that are due.

Every call works from the ledger, so a sweep can be repeated, interrupted or run by two
processes without sending anything twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from bot import schedule
from bot.alerts import Terms, alert_hits
from bot.delivery import DeliveryOptions, deliver
from bot.delivery_jobs import DeliveryReport
from bot.jobs import alert_job
from bot.models import Digest, Subscriber
from bot.pipeline import (
    Deps,
    SendOptions,
    SendReport,
    Target,
    no_digest,
    send_to_targets,
)
from bot.store.tables import Delivery

ALERT_WINDOW_DAYS = 1  # papers from today's and yesterday's lists can fire alerts
Roster = Mapping[int, Subscriber]


async def send_alerts(deps: Deps, roster: Roster, now: datetime, cache: Terms) -> DeliveryReport:
    """One alert email per (subscriber, paper) that fires a rule; the paper is then marked sent."""
    watchers = {sid: sub for sid, sub in roster.items() if sub.alerts}
    if not watchers:
        return DeliveryReport()
    today = now.date()
    recent = deps.store.papers_between(today - timedelta(days=ALERT_WINDOW_DAYS), date.max)
    list_day = {item.paper.id: item.list_date for item in recent}
    first = today - timedelta(days=ALERT_WINDOW_DAYS)
    deps.store.ledger.settle_old_alerts(first, now)
    sent = deps.store.sent_paper_ids(watchers, (item.paper.id for item in recent))
    rows = deps.store.ledger.alert_rows(list(watchers), first)
    suppressed = deps.store.suppressed_emails()
    jobs = []
    for sid, sub in watchers.items():
        if sub.email.lower() in suppressed:
            continue
        fresh = [
            i.paper
            for i in recent
            if i.paper.id not in sent.get(sid, set()) and _open(rows.get((sid, i.paper.id)), now)
        ]
        for hit in alert_hits(sub, fresh, cache):
            day = list_day[hit.paper.id]
            digest = Digest(
                sub, now.astimezone(sub.zone).date(), (hit.match,), (), "alert", hit.rules
            )
            jobs.append(alert_job(
                deps.settings, deps.renderer, deps.clock, sid, day, digest, hit.paper.id
            ))  # fmt: skip
    if not jobs:
        return DeliveryReport()
    return await deliver(deps, jobs, DeliveryOptions(retry_now=False))


def _open(row: Delivery | None, now: datetime) -> bool:
    """Whether an alert may be (re)tried: no row yet, a due retry, or an abandoned send."""
    return row is None or row.retry_due(now) or row.abandoned(now)


def _digest_targets(
    deps: Deps, roster: Roster, now: datetime, after: datetime | None,
    waiting: Iterable[tuple[int, date]],
) -> list[Target]:  # fmt: skip
    """Digests due now with no ledger row yet, plus failed ones whose retry time has come.

    A digest left ``waiting`` for papers is due again, unless a later one of its subscriber is
    (that one carries every paper since the previous digest, as after downtime) or their
    frequency no longer names its date.

    Subscribers who get no digest whatever the papers (a suppressed address, a profile without
    interests: see ``no_digest``) are left out, before any matching: nothing would settle their
    digest, so each sweep would report it again (the worker names them once, when it adopts
    the profiles).
    """
    suppressed = deps.store.suppressed_emails()
    roster = {sid: sub for sid, sub in roster.items() if no_digest(sub, suppressed) is None}
    due = {
        (sid, day): sub
        for sid, sub, day in schedule.due(
            roster.items(), now, deps.store.ledger.with_digests(), after
        )
    }
    latest = {sid: day for sid, day in due}
    for sid, day in waiting:
        sub = roster.get(sid)
        if sub is not None and sub.sends_on(day) and latest.get(sid, day) <= day:
            due.setdefault((sid, day), sub)
    settled = deps.store.ledger.digests_on(sorted({day for _, day in due}))
    targets = {key: Target(sub, *key) for key, sub in due.items() if key not in settled}
    for row in deps.store.ledger.due_retries(now):
        if row.kind == "digest" and row.subscriber_id in roster:
            key = (row.subscriber_id, row.digest_date)
            targets.setdefault(key, Target(roster[row.subscriber_id], *key))
    return list(targets.values())


async def sweep(
    deps: Deps, roster: Roster, now: datetime, cache: Terms | None = None,
    *, sources_down: bool = False, after: datetime | None = None,
    waiting: Iterable[tuple[int, date]] = (),
) -> SendReport:  # fmt: skip
    """Alerts first (so the digest does not repeat them), then due digests and retries.

    ``after`` is when the previous sweep that went through ran (None after a start): only sends
    since then are caught up, besides the digests ``waiting`` for papers. While
    ``sources_down`` (every source failed its last fetch), a digest with no new papers waits
    rather than telling its subscriber that nothing matched. When sending the alerts stopped
    (the server is unreachable, or shutting down), the digests wait for a later sweep.
    """
    alerts = await send_alerts(deps, roster, now, {} if cache is None else cache)
    report = SendReport()
    if alerts.stopped:  # only a stopped run releases messages
        report.add(alerts)
        return report
    targets = _digest_targets(deps, roster, now, after, waiting)
    options = SendOptions(retry_now=False, fetch_missing=False, wait_for_papers=sources_down)
    if targets:
        report = await send_to_targets(deps, targets, options)
    report.outcomes[:0] = alerts.outcomes
    return report
