"""The subscriber side of lexical matching: interests compiled into weighted features.

A keyword is a phrase: its exact occurrence counts ``PHRASE_SHARE`` of the keyword's match, its
words found apart share the rest in proportion to their IDF. The description is a soft query of
IDF-weighted terms. Every weight vector sums to 1, so a match value means the same in any profile.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from bot.matching.index import Collection, Feature
from bot.matching.text import fold, terms_of, tokenize
from bot.models import Subscriber

PHRASE_SHARE = 0.7

Weights = dict[Feature, float]


@dataclass(frozen=True, slots=True)
class Phrase:
    """A keyword or exclude: the text the subscriber wrote and its weighted features."""

    label: str
    terms: tuple[str, ...]
    weights: Weights

    @property
    def feature(self) -> Feature:
        """The feature standing for the whole phrase."""
        return self.terms if len(self.terms) > 1 else self.terms[0]


@dataclass(frozen=True, slots=True)
class Query:
    """One subscriber's interests, ready to score."""

    keywords: tuple[Phrase, ...]
    description: Weights
    surface: dict[str, str]
    excludes: tuple[Phrase, ...]
    authors: tuple[str, ...]
    categories: frozenset[str]
    likes: tuple[str, ...]

    @property
    def topical(self) -> bool:
        """Whether the profile says anything about topics (keywords, description or likes)."""
        return bool(self.keywords or self.description or self.likes)

    @property
    def empty(self) -> bool:
        """Whether nothing in the profile can select a paper."""
        return not (self.topical or self.authors or self.categories)


def _phrase(label: str, collection: Collection) -> Phrase | None:
    terms = tuple(terms_of(label, collection.acronyms))
    if not terms:
        return None
    if len(terms) == 1:
        return Phrase(label, terms, {terms[0]: 1.0})
    idf = {t: collection.idf(t) for t in terms}
    total = sum(idf[t] for t in terms)
    weights: Weights = {terms: PHRASE_SHARE}
    for t in terms:
        weights[t] = weights.get(t, 0.0) + (1 - PHRASE_SHARE) * idf[t] / total
    return Phrase(label, terms, weights)


def _description(text: str, collection: Collection) -> tuple[Weights, dict[str, str]]:
    surface: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for token in tokenize(text, collection.acronyms):
        word = text[token.start : token.end]
        for term in token.terms:
            counts[term] += 1
            surface.setdefault(term, word if len(token.terms) == 1 else word.upper())
    raw = {t: (1 + math.log(c)) * collection.idf(t) for t, c in counts.items()}
    total = sum(raw.values())
    return ({t: w / total for t, w in raw.items()} if total else {}), surface


def compile_query(subscriber: Subscriber, collection: Collection) -> Query:
    """Compile ``subscriber``'s interests against the collection's statistics."""
    interests = subscriber.interests
    keywords = tuple(p for k in interests.keywords if (p := _phrase(k, collection)))
    excludes = tuple(p for k in interests.exclude if (p := _phrase(k, collection)))
    description, surface = _description(interests.description, collection)
    return Query(
        keywords,
        description,
        surface,
        excludes,
        tuple(a for a in interests.authors if re.search(r"\w", a)),
        frozenset(fold(c) for c in interests.categories),
        tuple(interests.like),
    )
