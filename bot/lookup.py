"""Looking without sending: what a subscriber would get, and why a paper was or was not picked.

Neither touches the ledger; papers are fetched and stored when the day is not stored yet.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from bot import matching
from bot.errors import BotError
from bot.jobs import build_digest, compose
from bot.message import Outgoing, new_message_id
from bot.models import Digest, Subscriber
from bot.pipeline import CORPUS_DAYS, Deps, SendReport, Target, candidates, ensure_papers, select
from bot.store.tables import FINAL_STATES, STATE_MEANING


def not_sent(deps: Deps, subscriber: Subscriber, day: date) -> str | None:
    """Why ``subscriber`` would get no digest for ``day`` whatever matches, or None: the address
    is suppressed, or the ledger has settled that digest already."""
    if subscriber.email.lower() in deps.store.suppressed_emails():
        return f"{subscriber.email} is suppressed"
    sid = deps.store.subscriber_id(subscriber.email)
    row = deps.store.ledger.get(sid, day) if sid is not None else None
    if row is not None and row.status in FINAL_STATES:
        return f"{STATE_MEANING[row.status]} for {day}"
    return None


async def preview(deps: Deps, subscriber: Subscriber, day: date) -> tuple[Digest, Outgoing]:
    """What ``subscriber`` would receive for ``day``, rendered; nothing is sent or recorded.

    The day's papers are fetched and stored if needed; the ledger is not touched.
    """
    missing = await ensure_papers(deps, day, SendReport())
    if missing:
        raise BotError(missing)
    target = Target(subscriber, deps.store.subscriber_id(subscriber.email) or -1, day)
    found = candidates(deps, [target], force=False)
    selection = select(deps, [target], found.papers)[target.key]
    digest = build_digest(subscriber, day, selection, found.earlier[target.key])
    message_id = new_message_id(deps.settings.sender)
    return digest, compose(deps.settings, deps.renderer, digest, message_id, deps.clock())


def explain_stored(deps: Deps, subscriber: Subscriber, paper_id: str) -> matching.Explanation:
    """Why a stored paper was or was not picked for ``subscriber``, among its day's papers."""
    item = deps.store.stored_paper(paper_id)
    if item is None:
        raise BotError(f"paper {paper_id} is not stored; fetch its day first (`paperbot fetch`)")
    window = deps.store.papers_between(item.list_date - timedelta(days=CORPUS_DAYS), item.list_date)
    day = [i.paper for i in window if i.list_date == item.list_date]
    liked = deps.store.papers_by_id(subscriber.interests.like)
    verdict = matching.explain(
        subscriber, item.paper, day, corpus=[i.paper for i in window], liked=liked
    )
    sid = deps.store.subscriber_id(subscriber.email)
    if sid is None or paper_id not in deps.store.sent_paper_ids([sid], [paper_id]).get(sid, ()):
        return verdict
    # A paper is never sent to the same person twice, whatever it scores.
    return replace(verdict, status=f"{verdict.status}, but already sent to {subscriber.email}")
