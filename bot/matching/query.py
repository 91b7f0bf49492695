"""The subscriber side of lexical matching: interests compiled into weighted features.

A keyword is a phrase: its exact occurrence counts ``PHRASE_SHARE`` of the keyword's match, its
words found apart share the rest in proportion to their IDF. The description is a soft query of
IDF-weighted terms and of its pairs of adjacent words (see ``describe``). Every weight vector sums
to 1, so a match value means the same in any profile.

Compiling also numbers every feature in use (the matrix columns) and every distinct phrase, so
the vectorised signals and explanations work on index arrays, not on strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.matching.describe import Descriptions
from bot.matching.index import Collection, Feature
from bot.models import Subscriber
from bot.text import DESCRIBING, WORD, fold, word_terms

PHRASE_SHARE = 0.6

Weights = dict[Feature, float]


@dataclass(frozen=True, slots=True)
class Phrase:
    """A keyword or exclude: the text written, its weighted features and their columns.

    ``cols`` are the columns of ``weights`` in the same order; ``id`` numbers distinct term
    sequences (phrases with the same terms share it); ``words`` are the words written, each
    with its terms.
    """

    label: str
    terms: tuple[str, ...]
    weights: Weights
    cols: tuple[int, ...] = ()
    id: int = 0
    words: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def col(self) -> int:
        """The column of the feature standing for the whole phrase (first in ``weights``)."""
        return self.cols[0]


@dataclass(frozen=True, slots=True)
class Query:
    """One subscriber's interests, ready to score.

    ``description`` is the row of the description in the vocabulary's ``descriptions`` and
    ``described`` whether it has any term.
    """

    keywords: tuple[Phrase, ...]
    description: int
    described: bool
    excludes: tuple[Phrase, ...]
    authors: tuple[str, ...]
    categories: frozenset[str]
    likes: tuple[str, ...]

    @property
    def topical(self) -> bool:
        """Whether the profile says anything about topics (keywords, description or likes)."""
        return bool(self.keywords or self.described or self.likes)

    @property
    def empty(self) -> bool:
        """Whether nothing in the profile can select a paper."""
        return not (self.topical or self.authors or self.categories)


class Vocabulary:
    """Matrix columns of the features in use, ids of the distinct phrases, and descriptions."""

    def __init__(self) -> None:
        self.columns: dict[Feature, int] = {}
        self.phrases: list[Phrase] = []
        self._phrase_ids: dict[tuple[str, ...], int] = {}
        self.descriptions: Descriptions | None = None

    def column(self, feature: Feature) -> int:
        """The column of ``feature``, given a new one when first seen."""
        col = self.columns.get(feature)
        if col is None:
            col = self.columns[feature] = len(self.columns)
        return col

    def phrase(
        self, label: str, words: tuple[tuple[str, tuple[str, ...]], ...], weights: Weights
    ) -> Phrase:
        """A phrase of ``words`` (each with its terms) with its columns and id; the first
        phrase of each term sequence is kept."""
        terms = tuple(t for _, word_terms in words for t in word_terms)
        pid = self._phrase_ids.get(terms)
        cols = tuple(map(self.column, weights))
        made = Phrase(label, terms, weights, cols, len(self.phrases) if pid is None else pid, words)
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
        """The terms of one word (see ``word_terms``)."""
        terms = self.terms.get(word)
        if terms is None:
            collection = self.collection
            terms = self.terms[word] = word_terms(word, collection.df, collection.acronyms)
            for term in terms:
                self.idf[term] = self.collection.idf(term)
                self.cols[term] = self.vocabulary.column(term)
        return terms

    def columns(self, word: str) -> tuple[int, ...]:
        """The columns of the terms of one word."""
        return tuple([self.cols[t] for t in self(word)])

    def idf_by_column(self, without: frozenset[str] = frozenset()) -> np.ndarray:
        """The IDF of each term column (0 for other columns, and for the terms ``without``)."""
        idf = np.zeros(len(self.vocabulary.columns))
        idf[list(self.cols.values())] = list(self.idf.values())
        idf[[col for term, col in self.cols.items() if term in without]] = 0.0
        return idf


Key = tuple[object, ...]
_NONE: frozenset[str] = frozenset()


def _key(subscriber: Subscriber) -> Key:
    """What compiling a profile depends on: equal keys give equal queries."""
    interests = subscriber.interests
    return (
        *map(tuple, (interests.keywords, interests.exclude, interests.authors)),
        *map(tuple, (interests.categories, interests.like)),
        interests.description,
    )


class Compiler:
    """Compiles profiles against one collection, reusing the work profiles share.

    Identical profiles get the same ``Query``; ``vocabulary`` numbers what all of them use.
    """

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.vocabulary = Vocabulary()
        self._phrases: dict[str, Phrase | None] = {}
        self._words = _Words(collection, self.vocabulary)

    def _compiled(self, labels: list[str]) -> tuple[Phrase, ...]:
        if not labels:
            return ()
        cache = self._phrases
        for label in labels:
            if label not in cache:
                words = tuple((w, self._words(w)) for w in WORD.findall(label))
                terms = tuple(t for _, word_terms in words for t in word_terms)
                cache[label] = (
                    self.vocabulary.phrase(label, words, _weights(terms, self.collection))
                    if terms
                    else None
                )
        return tuple(p for label in labels if (p := cache[label]))

    def compile(self, subscribers: Sequence[Subscriber]) -> list[Query]:
        """The queries of ``subscribers`` (in order); call once per compiler."""
        keys = list(map(_key, subscribers))
        profiles = dict(zip(keys, subscribers, strict=True))
        texts = {s.interests.description: 0 for s in profiles.values()}
        texts = {text: row for row, text in enumerate(texts)}
        descriptions = Descriptions(texts, self._words.columns)
        descriptions.weigh(self._words.idf_by_column(DESCRIBING), self._pairs)
        self.vocabulary.descriptions = descriptions
        described = (descriptions.lengths > 0).tolist()
        queries = {}
        for key, subscriber in profiles.items():
            row = texts[subscriber.interests.description]
            queries[key] = self._query(subscriber, row, described[row])
        return [queries[key] for key in keys]

    def _pairs(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Columns of the term pairs ``(first[k], second[k])`` that some paper holds, else -1."""
        columns = self.vocabulary.columns
        features, width = list(columns), len(columns)
        held = [
            columns[a] * width + columns[b]
            for a, b in self.collection.pairs()
            if a in columns and b in columns
        ]
        found = np.flatnonzero(np.isin(first * width + second, np.array(held, np.int64)))
        out = np.full(len(first), -1, np.int64)
        for k in found.tolist():
            out[k] = self.vocabulary.column((features[first[k]], features[second[k]]))
        return out

    def _query(self, subscriber: Subscriber, row: int, described: bool) -> Query:
        interests = subscriber.interests
        return Query(
            self._compiled(interests.keywords),
            row,
            described,
            self._compiled(interests.exclude),
            tuple(a for a in interests.authors if re.search(r"\w", a)) if interests.authors else (),
            frozenset(fold(c) for c in interests.categories) if interests.categories else _NONE,
            tuple(interests.like),
        )
