"""Which new papers fire a subscriber's alert rules, and the alert email that holds them (pure).

A rule fires on a paper when one of its authors wrote it (robust to initials, accents and name
order) or one of its phrases appears in the title or abstract (as consecutive stemmed words, so
"state space model" also finds "State-Space Models").

The papers that fire in one sweep go out together, in one alert (``alert_digest``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from bot.matching.text import same_person, sentences, terms_of, tokenize
from bot.models import AlertRule, Digest, Match, Paper, Subscriber


@dataclass(frozen=True, slots=True)
class AlertHit:
    """A paper that fired one or more of a subscriber's rules."""

    paper: Paper
    rules: tuple[str, ...]
    match: Match


def _contains(terms: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(
        tuple(terms[i : i + n]) == tuple(phrase) for i in range(len(terms) - n + 1)
    )


Terms = dict[str, tuple[list[str], list[str]]]


def _terms(paper: Paper, cache: Terms) -> tuple[list[str], list[str]]:
    if paper.id not in cache:
        cache[paper.id] = (terms_of(paper.title), terms_of(paper.abstract))
    return cache[paper.id]


def _phrase_reason(rule: AlertRule, paper: Paper, cache: Terms) -> tuple[str, str] | None:
    """The reason a phrase of ``rule`` gives for ``paper``, and the phrase."""
    title, abstract = _terms(paper, cache)
    for phrase in rule.keywords:
        wanted = terms_of(phrase)
        if _contains(title, wanted):
            return f"alert: {phrase} (title)", phrase
        if _contains(abstract, wanted):
            return f"alert: {phrase}", phrase
    return None


def _author_reason(rule: AlertRule, paper: Paper) -> tuple[str, str] | None:
    """The reason an author of ``rule`` gives for ``paper``, and the author as the rule names
    them."""
    for wanted in rule.authors:
        for author in paper.authors:
            if same_person(wanted, author):
                return f"author: {author}", wanted
    return None


def _snippet(paper: Paper, rule_phrases: Iterable[str]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The first abstract sentence that holds a phrase, with each occurrence of it marked."""
    wanted = [terms_of(p) for p in rule_phrases]
    for start, end in sentences(paper.abstract):
        text = paper.abstract[start:end]
        tokens = tokenize(text)
        terms = [t for token in tokens for t in token.terms]
        owner = [token for token in tokens for _ in token.terms]  # the token of each term
        hit = next((w for w in wanted if _contains(terms, w)), None)
        if hit:
            n = len(hit)
            found = [i for i in range(len(terms) - n + 1) if terms[i : i + n] == hit]
            marks = tuple(dict.fromkeys((owner[i].start, owner[i + n - 1].end) for i in found))
            return text, marks
    return "", ()


def _excluded(subscriber: Subscriber, paper: Paper, cache: Terms) -> bool:
    """Whether the paper holds a phrase the subscriber excludes (a veto, as in digests)."""
    title, abstract = _terms(paper, cache)
    vetoes = (terms_of(phrase) for phrase in subscriber.interests.exclude)
    return any(_contains(title, v) or _contains(abstract, v) for v in vetoes)


def alert_hits(
    subscriber: Subscriber, papers: Iterable[Paper], cache: Terms | None = None
) -> list[AlertHit]:
    """Every paper that fires at least one of the subscriber's alert rules and holds none of
    the phrases they exclude.

    ``cache`` keeps the analysed words of each paper between calls (one dict per sweep).
    """
    cache = {} if cache is None else cache
    hits = []
    for paper in papers:
        if subscriber.interests.exclude and _excluded(subscriber, paper, cache):
            continue
        fired: list[str] = []
        reasons: list[str] = []
        for rule in subscriber.alerts:
            found = _author_reason(rule, paper) or _phrase_reason(rule, paper, cache)
            if found:
                reason, trigger = found
                fired.append(rule.name or trigger)  # what fired, not every term of the rule
                reasons.append(reason)
        if fired:
            phrases = [k for rule in subscriber.alerts for k in rule.keywords]
            snippet, marks = _snippet(paper, phrases)
            match = Match(paper, 1.0, tuple(dict.fromkeys(reasons)), snippet, marks)
            hits.append(AlertHit(paper, tuple(dict.fromkeys(fired)), match))
    return hits


def unfired(paper: Paper) -> AlertHit:
    """A paper an alert holds although none of the subscriber's rules fires on it any more (the
    profile changed before the alert went again): shown without reasons."""
    return AlertHit(paper, (), Match(paper, 1.0))


def alert_digest(subscriber: Subscriber, day: date, hits: Sequence[AlertHit]) -> Digest:
    """One alert email holding ``hits`` in their order: the first ``max_papers`` of them shown
    in full, the others listed by title under "N more matches". Its topics are the rules that
    fired, each once."""
    shown = subscriber.max_papers
    topics = tuple(dict.fromkeys(rule for hit in hits for rule in hit.rules))
    matches = tuple(hit.match for hit in hits[:shown])
    more = tuple(hit.paper for hit in hits[shown:])
    return Digest(subscriber, day, matches, more, "alert", topics)
