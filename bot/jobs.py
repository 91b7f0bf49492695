"""From a subscriber's digest to a delivery job: the message's facts, its draft, its job.

The job renders its message only once the ledger row is claimed, so a retry or a resend after a
crash carries exactly the papers (and Message-ID) the claim holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from email.headerregistry import Address

from bot import matching
from bot.alerts import AlertHit, alert_digest
from bot.composer import Draft, compose_draft
from bot.delivery import Job
from bot.errors import UnwritableDeliveryError
from bot.message import Envelope, Outgoing, Unsubscribe, list_id, recipient
from bot.models import Digest, DigestKind, Match, Paper, Subscriber
from bot.render import EmailContext, Renderer, listed_only
from bot.settings import Settings
from bot.store import OUTCOME_UNKNOWN, Claim
from bot.text import distinct_phrases

Clock = Callable[[], datetime]
Lookup = Callable[[Sequence[str]], Mapping[str, Paper]]
"""Stored papers by id, of those asked for that are stored."""


def email_context(settings: Settings, subscriber: Subscriber) -> tuple[EmailContext, Unsubscribe]:
    """The footer facts and unsubscribe links of one subscriber's messages."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    links = Unsubscribe.for_recipient(
        subscriber.email, base_url=settings.base_url, secret=secret,
        mailto=settings.unsubscribe_mailto,
    )  # fmt: skip
    ctx = EmailContext(
        sender_name=settings.sender.display_name or "paperbot",
        contact=settings.admin_email or settings.sender.addr_spec,
        unsubscribe_url=links.url,
        unsubscribe_mailto=links.mailto,
        postal_address=settings.postal_address,
    )
    return ctx, links


def reply_to(settings: Settings) -> Address | None:
    """The contact address (``PAPERBOT_ADMIN_EMAIL``) when it is not the sender's: the footer
    asks subscribers to write there, and a reply should reach the same person."""
    contact = settings.admin_email
    if not contact or contact.lower() == settings.sender.addr_spec.lower():
        return None
    return Address(addr_spec=contact)


def build_digest(
    subscriber: Subscriber, day: date, selection: matching.Selection, earlier: int = 0
) -> Digest:
    """The Digest for one subscriber: the picks, the overflow, and their topics; ``earlier``
    papers of its lists reached the subscriber before it."""
    topics = (*distinct_phrases(subscriber.interests.keywords), *subscriber.interests.authors)
    kind: DigestKind = "digest" if selection.picked else "empty"
    return Digest(subscriber, day, selection.picked, selection.more, kind, topics, earlier)


def draft(settings: Settings, digest: Digest, message_id: str, now: datetime) -> Draft:
    """What the message for ``digest`` is made from, as plain data (see ``bot.composer``)."""
    ctx, links = email_context(settings, digest.subscriber)
    envelope = Envelope(
        sender=settings.sender,
        recipient=recipient(digest.subscriber.email, digest.subscriber.name),
        message_id=message_id,
        date=now,
        list_id=list_id(digest.kind, settings.sender),
        unsubscribe=links,
        reply_to=reply_to(settings),
    )
    # Only the further matches a message lists: a busy day has hundreds, abstracts and all.
    return Draft(listed_only(digest), ctx, envelope)


def compose(
    settings: Settings, renderer: Renderer, digest: Digest, message_id: str, now: datetime
) -> Outgoing:
    """Render the digest and write the message the subscriber will receive."""
    return compose_draft(renderer, draft(settings, digest, message_id, now))


def claimed_digest(
    digest: Digest, paper_ids: Sequence[str], selection: matching.Selection,
    lookup: Lookup | None = None,
) -> Digest:  # fmt: skip
    """The digest holding exactly the papers of a claim (``paper_ids``), in their order: after a
    crash, those the row recorded (its message is sent again as it was; none for a "nothing
    matched" note).

    A paper of the claim that ``selection`` did not score (the run that died had claimed the
    message with papers this run did not consider) is looked up with ``lookup`` (the store keeps
    every paper) and scored for the subscriber. One found nowhere fails the message for good:
    it cannot be sent again as it was, and the ledger and the log would name a paper it does not
    hold.
    """
    if tuple(m.paper.id for m in digest.matches) == tuple(paper_ids):
        return digest
    by_id: dict[str, Match] = {m.paper.id: m for m in selection.ranked}
    missing = [i for i in paper_ids if i not in by_id]
    if missing and lookup is not None:
        by_id.update(_scored(digest.subscriber, lookup(missing), selection, lookup))
    if gone := [i for i in paper_ids if i not in by_id]:
        what = f"paper {gone[0]} is" if len(gone) == 1 else f"papers {', '.join(gone)} are"
        raise UnwritableDeliveryError(
            f"{OUTCOME_UNKNOWN}, and it cannot be sent again as it was: {what} no longer stored"
        )
    matches = tuple(by_id[i] for i in paper_ids)
    more = tuple(p for p in digest.more if p.id not in paper_ids) if matches else ()
    kind: DigestKind = "digest" if matches else "empty"
    return replace(digest, matches=matches, more=more, kind=kind)


def _scored(
    subscriber: Subscriber, papers: Mapping[str, Paper], selection: matching.Selection,
    lookup: Lookup,
) -> dict[str, Match]:  # fmt: skip
    """``papers`` scored for ``subscriber``, the papers ``selection`` ranked counting too, and
    the papers they liked (looked up with ``lookup``) read as in any digest of theirs."""
    if not papers:
        return {}
    corpus = [m.paper for m in selection.ranked]
    liked = lookup(subscriber.interests.like) if subscriber.interests.like else {}
    chosen = matching.select([subscriber], list(papers.values()), corpus=corpus, liked=liked)
    return {m.paper.id: m for m in chosen[subscriber.email].ranked}


def _job(
    settings: Settings, renderer: Renderer, clock: Clock, key: tuple[int, date, str, str],
    make: Callable[[Claim], Digest], email: str, papers: tuple[str, ...],
) -> Job:  # fmt: skip
    def draft_claimed(claim: Claim) -> Draft:
        return draft(settings, make(claim), claim.message_id, clock())

    def compose_claimed(claim: Claim) -> Outgoing:
        return compose_draft(renderer, draft_claimed(claim))

    sid, day, kind, ref = key
    return Job(sid, email, day, compose_claimed, papers, kind, ref, draft=draft_claimed)


def digest_job(
    settings: Settings, renderer: Renderer, clock: Clock, sid: int, digest: Digest,
    selection: matching.Selection, lookup: Lookup | None = None,
) -> Job:  # fmt: skip
    """The job for one digest; its message is written once the ledger row is claimed (with the
    stored papers ``lookup`` finds, see ``claimed_digest``)."""
    papers = tuple(m.paper.id for m in digest.matches)
    key = (sid, digest.date, "digest", "")

    def make(claim: Claim) -> Digest:
        return claimed_digest(digest, claim.paper_ids, selection, lookup)

    return _job(settings, renderer, clock, key, make, digest.subscriber.email, papers)


def alert_job(
    settings: Settings, renderer: Renderer, clock: Clock, key: tuple[int, date, str],
    subscriber: Subscriber, day: date, hits: Mapping[str, AlertHit], paper_ids: Sequence[str],
) -> Job:  # fmt: skip
    """The job for one alert email holding ``paper_ids``: kind "alert", keyed by (subscriber
    id, date, ref) as ``bot.sweep`` names it; ``day`` is the date the email shows.

    Its message holds the papers of the claim, in their order, out of ``hits`` (after a crash,
    those recorded with the first attempt).
    """
    sid, listed, ref = key
    email, papers = subscriber.email, tuple(paper_ids)

    def make(claim: Claim) -> Digest:
        return alert_digest(subscriber, day, [hits[i] for i in claim.paper_ids if i in hits])

    return _job(settings, renderer, clock, (sid, listed, "alert", ref), make, email, papers)
