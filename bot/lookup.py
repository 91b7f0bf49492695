"""Looking without sending: what a subscriber would get, and why a paper was or was not picked.

Neither touches the ledger; papers are fetched and stored when the day is not stored yet.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from difflib import SequenceMatcher
from typing import TypeVar

from bot import ids, matching
from bot.alerts import Among, excluded, fired_rules
from bot.candidates import Target
from bot.errors import BotError
from bot.jobs import build_digest, compose
from bot.message import Outgoing, new_message_id
from bot.models import Digest, Paper, Subscriber
from bot.pipeline import (
    CORPUS_DAYS,
    Deps,
    SendOptions,
    SendReport,
    ensure_papers,
    match_targets,
    no_digest,
    not_reached,
)
from bot.store.tables import FINAL_STATES, STATE_MEANING

CLOSE_TITLE = 0.6
"""How alike (0 to 1) the beginning of a title and a title asked for must be to be offered."""


def not_sent(deps: Deps, subscriber: Subscriber, day: date) -> str | None:
    """Why ``subscriber`` would get no digest for ``day`` whatever matches, or None: as a send
    says it, the address is suppressed or the profile has no interests (``no_digest``), it is
    not ``day`` yet where they are (``not_reached``), or the ledger has settled that digest
    already."""
    why = no_digest(subscriber, deps.store.suppressed_emails())
    why = why or not_reached(subscriber, day, deps.clock())
    if why is not None:
        return why
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
    _, found, selections, _ = match_targets(deps, [target], {}, SendOptions())
    digest = build_digest(subscriber, day, selections[target.key], found.earlier[target.key])
    message_id = new_message_id(deps.settings.sender)
    return digest, compose(deps.settings, deps.renderer, digest, message_id, deps.clock())


def explain_paper(
    subscriber: Subscriber,
    paper: Paper,
    papers: Sequence[Paper],
    *,
    corpus: Sequence[Paper],
    liked: Mapping[str, Paper],
) -> matching.Explanation:
    """``matching.explain``, with how the subscriber's alert rules fire on the paper, read
    among the same papers (or would, but for a phrase they exclude)."""
    verdict = matching.explain(subscriber, paper, papers, corpus=corpus, liked=liked)
    among = Among.of([*corpus, *papers, paper], subscriber.interests.written)
    fired = [found.explained() for found in fired_rules(subscriber, paper, among)]
    if not fired and (veto := excluded(subscriber, paper, among)):
        would = fired_rules(subscriber, paper, among, vetoed=True)
        fired = [found.explained(veto) for found in would]
    return replace(verdict, alerts=tuple(fired))


def explain_listed(
    subscriber: Subscriber, wanted: str, papers: Sequence[Paper], source: str
) -> matching.Explanation:
    """Why the paper of ``papers`` (read from ``source``) that ``wanted`` names (see
    ``find_paper``) was or was not picked for ``subscriber``, among them."""
    by_id = {p.id: p for p in papers}
    titles = {p.id: p.title for p in papers}
    paper = find_paper(wanted, by_id.get, lambda: titles, f"paper in {source}")
    if paper is None:
        raise BotError(f"paper {_shown_id(wanted)} is not in {source}")
    return explain_paper(subscriber, paper, papers, corpus=papers, liked=by_id)


def explain_stored(deps: Deps, subscriber: Subscriber, wanted: str) -> matching.Explanation:
    """Why the stored paper ``wanted`` names (see ``find_paper``) was or was not picked for
    ``subscriber``, among its day's papers; which email carried it to them already, if one
    did; and whether their address is suppressed."""
    store = deps.store
    item = find_paper(wanted, store.stored_paper, store.paper_titles, "stored paper")
    if item is None:
        shown = _shown_id(wanted)
        raise BotError(f"paper {shown} is not stored; fetch its day first (`paperbot fetch`)")
    window = store.papers_between(item.list_date - timedelta(days=CORPUS_DAYS), item.list_date)
    day = [i.paper for i in window if i.list_date == item.list_date]
    liked = store.papers_by_id(subscriber.interests.like)
    verdict = explain_paper(
        subscriber, item.paper, day, corpus=[i.paper for i in window], liked=liked
    )
    return with_ledger(deps, subscriber, verdict)


def with_ledger(
    deps: Deps, subscriber: Subscriber, verdict: matching.Explanation
) -> matching.Explanation:
    """``verdict`` with which email carried its paper to ``subscriber`` already, if one did,
    and whether their address is suppressed, as the ledger says."""
    suppression = deps.store.suppressed().get(subscriber.email.lower())
    return replace(
        verdict,
        sent=_delivered(deps, subscriber, verdict.paper_id),
        suppressed=suppression.reason if suppression else "",
    )


def _delivered(deps: Deps, subscriber: Subscriber, paper_id: str) -> matching.Delivered | None:
    """The email that carried the paper to the subscriber (a paper never goes to the same
    person twice, whatever it scores), if one did."""
    sid = deps.store.subscriber_id(subscriber.email)
    found = deps.store.sent_in(sid, paper_id) if sid is not None else None
    return matching.Delivered(*found) if found else None


Found = TypeVar("Found")


def find_paper(
    wanted: str,
    by_id: Callable[[str], Found | None],
    titles: Callable[[], Mapping[str, str]],
    noun: str,
) -> Found | None:
    """The paper ``wanted`` names: by its id (an arXiv version ignored) or, unless it is an
    arXiv id, by its title among ``titles`` (id → title; see ``titled``). None when it is an id
    no paper has."""
    pid = ids.paper_id(wanted)
    found = by_id(pid) if pid else None
    if found is None and not ids.arxiv_id(wanted):
        return by_id(titled(wanted, titles(), noun))
    return found


def titled(wanted: str, titles: Mapping[str, str], noun: str) -> str:
    """The id of the one title ``wanted`` names, case and punctuation aside: the title itself, else
    the one title it begins, else the one title holding it. BotError when it names several, or
    none (naming up to 3 close titles); ``noun`` says what a paper is (``stored paper``)."""
    text = _folded(wanted)
    if not text:
        raise BotError("give a paper id or title")
    folded = {pid: _folded(title) for pid, title in titles.items()}
    for test in (str.__eq__, str.startswith, str.__contains__):
        found = [pid for pid, title in folded.items() if test(title, text)]
        if len(found) == 1:
            return found[0]
        if found:
            listed = _listed(found, titles)
            raise BotError(
                f'"{wanted}" is in {len(found)} titles: {listed}; give more of the title, or the id'
            )
    close = _close(text, folded)
    hint = f"; close titles: {_listed(close, titles)}" if close else ""
    raise BotError(f'no {noun} has the title "{wanted}"{hint}')


def _folded(title: str) -> str:
    """The words of ``title`` in lower case, one space apart (punctuation and hyphens too)."""
    return " ".join(re.findall(r"\w+", title.casefold()))


def _listed(found: Sequence[str], titles: Mapping[str, str], most: int = 3) -> str:
    """Up to ``most`` of the ``found`` ids, each with its title."""
    shown = "; ".join(f'"{titles[pid]}" ({pid})' for pid in found[:most])
    return shown + ("; …" if len(found) > most else "")


def _close(text: str, folded: Mapping[str, str], most: int = 3) -> list[str]:
    """Up to ``most`` ids whose titles begin most like ``text``, at least ``CLOSE_TITLE``."""
    matcher = SequenceMatcher(b=text)

    def likeness(title: str) -> float:
        matcher.set_seq1(title[: len(text)])
        for bound in (matcher.real_quick_ratio, matcher.quick_ratio):  # upper bounds, cheap first
            if bound() < CLOSE_TITLE:
                return 0.0
        return matcher.ratio()

    scored = heapq.nlargest(most, ((likeness(title), pid) for pid, title in folded.items()))
    return [pid for score, pid in scored if score >= CLOSE_TITLE]


def _shown_id(wanted: str) -> str:
    return ids.paper_id(wanted) or wanted.strip()
