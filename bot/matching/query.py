"""The subscriber side of lexical matching: interests compiled into weighted features.

A keyword is a phrase: its exact occurrence counts ``PHRASE_SHARE`` of the keyword's match, its
words found apart share the rest in proportion to their IDF. The description is a soft query of
IDF-weighted terms. Every weight vector sums to 1, so a match value means the same in any profile.

Compiling also numbers every feature in use (the matrix columns) and every distinct phrase, so
the vectorised signals and explanations work on index arrays, not on strings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bot.matching.index import Collection, Feature
from bot.matching.text import WORD, fold, terms_of
from bot.models import Subscriber

PHRASE_SHARE = 0.6

Weights = dict[Feature, float]


@dataclass(frozen=True, slots=True)
class Phrase:
    """A keyword or exclude: the text written, its weighted features and their columns.

    ``cols`` are the columns of ``weights`` in the same order; ``id`` numbers distinct term
    sequences (phrases with the same terms share it).
    """

    label: str
    terms: tuple[str, ...]
    weights: Weights
    cols: tuple[int, ...] = ()
    id: int = 0

    @property
    def feature(self) -> Feature:
        """The feature standing for the whole phrase."""
        return self.terms if len(self.terms) > 1 else self.terms[0]

    @property
    def col(self) -> int:
        """The column of ``feature`` (it always comes first in ``weights``)."""
        return self.cols[0]


@dataclass(frozen=True, slots=True)
class Query:
    """One subscriber's interests, ready to score.

    ``description_cols`` are the columns of ``description`` in the same order; ``keyword_cols``
    the sorted columns of every keyword term (the words a snippet marks).
    """

    keywords: tuple[Phrase, ...]
    description: Weights
    surface: dict[str, str]
    excludes: tuple[Phrase, ...]
    authors: tuple[str, ...]
    categories: frozenset[str]
    likes: tuple[str, ...]
    description_cols: tuple[int, ...] = ()
    keyword_cols: tuple[int, ...] = ()

    @property
    def topical(self) -> bool:
        """Whether the profile says anything about topics (keywords, description or likes)."""
        return bool(self.keywords or self.description or self.likes)

    @property
    def empty(self) -> bool:
        """Whether nothing in the profile can select a paper."""
        return not (self.topical or self.authors or self.categories)


class Vocabulary:
    """Matrix columns of the features in use, and ids of the distinct phrases."""

    def __init__(self) -> None:
        self.columns: dict[Feature, int] = {}
        self.phrases: list[Phrase] = []
        self._phrase_ids: dict[tuple[str, ...], int] = {}

    def column(self, feature: Feature) -> int:
        """The column of ``feature``, given a new one when first seen."""
        col = self.columns.get(feature)
        if col is None:
            col = self.columns[feature] = len(self.columns)
        return col

    def phrase(self, label: str, terms: tuple[str, ...], weights: Weights) -> Phrase:
        """A phrase with its columns and id; the first phrase of each term sequence is kept."""
        pid = self._phrase_ids.get(terms)
        cols = tuple(map(self.column, weights))
        made = Phrase(label, terms, weights, cols, len(self.phrases) if pid is None else pid)
        if pid is None:
            self._phrase_ids[terms] = made.id
            self.phrases.append(made)
        return made


def _weights(terms: tuple[str, ...], collection: Collection) -> Weights:
    if len(terms) == 1:
        return {terms[0]: 1.0}
    idf = {t: collection.idf(t) for t in terms}
    total = sum(idf[t] for t in terms)
    weights: Weights = {terms: PHRASE_SHARE}
    for t in terms:
        weights[t] = weights.get(t, 0.0) + (1 - PHRASE_SHARE) * idf[t] / total
    return weights


class _Words:
    """The terms of each word of profile text, analysed once however many profiles use it.

    ``idf`` and ``cols`` hold each term's IDF and column, looked up once per distinct term.
    """

    def __init__(self, collection: Collection, vocabulary: Vocabulary) -> None:
        self.collection = collection
        self.vocabulary = vocabulary
        self.terms: dict[str, tuple[str, ...]] = {}
        self.idf: dict[str, float] = {}
        self.cols: dict[str, int] = {}

    def __call__(self, word: str) -> tuple[str, ...]:
        """The terms of one word (acronyms expanded)."""
        terms = self.terms.get(word)
        if terms is None:
            terms = self.terms[word] = tuple(terms_of(word, self.collection.acronyms))
            for term in terms:
                self.idf[term] = self.collection.idf(term)
                self.cols[term] = self.vocabulary.column(term)
        return terms


def _description(text: str, words: _Words) -> tuple[Weights, dict[str, str]]:
    """IDF-weighted terms of free text (sublinear counts), summing to 1, and a word per term."""
    surface: dict[str, str] = {}
    counts: dict[str, int] = {}
    known = words.terms
    for word in WORD.findall(text):
        terms = known.get(word)
        for term in words(word) if terms is None else terms:
            if term in counts:
                counts[term] += 1
            else:
                counts[term] = 1
                surface[term] = word
    idf = words.idf
    raw = {t: idf[t] if c == 1 else (1 + math.log(c)) * idf[t] for t, c in counts.items()}
    total = sum(raw.values())
    return ({t: w / total for t, w in raw.items()} if total else {}), surface


class Compiler:
    """Compiles profiles against one collection, reusing the work profiles share.

    Identical profiles get the same ``Query``; ``vocabulary`` numbers what all of them use.
    """

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.vocabulary = Vocabulary()
        self._phrases: dict[str, Phrase | None] = {}
        self._words = _Words(collection, self.vocabulary)
        self._queries: dict[tuple[object, ...], Query] = {}

    def _compiled(self, labels: list[str]) -> tuple[Phrase, ...]:
        cache = self._phrases
        for label in labels:
            if label not in cache:
                terms = tuple(t for w in WORD.findall(label) for t in self._words(w))
                cache[label] = (
                    self.vocabulary.phrase(label, terms, _weights(terms, self.collection))
                    if terms
                    else None
                )
        return tuple(p for label in labels if (p := cache[label]))

    def __call__(self, subscriber: Subscriber) -> Query:
        """``subscriber``'s interests, ready to score."""
        interests = subscriber.interests
        key = (
            *map(tuple, (interests.keywords, interests.exclude, interests.authors)),
            *map(tuple, (interests.categories, interests.like)),
            interests.description,
        )
        query = self._queries.get(key)
        if query is None:
            query = self._queries[key] = self._query(subscriber)
        return query

    def _query(self, subscriber: Subscriber) -> Query:
        interests = subscriber.interests
        description, surface = _description(interests.description, self._words)
        keywords = self._compiled(interests.keywords)
        cols = self._words.cols
        # The columns of a phrase's terms follow the phrase's own (when it has several terms).
        terms = {c for phrase in keywords for c in (phrase.cols[1:] or phrase.cols)}
        return Query(
            keywords,
            description,
            surface,
            self._compiled(interests.exclude),
            tuple(a for a in interests.authors if re.search(r"\w", a)),
            frozenset(fold(c) for c in interests.categories),
            tuple(interests.like),
            tuple([cols[t] for t in description]),
            tuple(sorted(terms)),
        )


def compile_query(subscriber: Subscriber, collection: Collection) -> Query:
    """Compile ``subscriber``'s interests against the collection's statistics."""
    return Compiler(collection)(subscriber)
