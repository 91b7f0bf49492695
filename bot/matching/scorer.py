"""The scorer interface and the lexical scorer behind it.

A scorer turns subscribers and papers into a score matrix in [0, 1] plus, on demand, the evidence
for one pair. Selection, thresholds and explanations only see this interface, so another model
(for example text embeddings) can replace or join the lexical one without touching them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from bot.matching.combine import combine
from bot.matching.evidence import Evidence, vetoes
from bot.matching.index import Collection
from bot.matching.likes import Likes
from bot.matching.matrices import Array, Matrices
from bot.matching.query import Compiler, Query
from bot.matching.reasons import Explainer, Found
from bot.matching.signals import compute
from bot.models import Paper, Subscriber

CHUNK = 2000


class Scores(Protocol):
    """Scores of subscribers (rows, in the given order) against papers (columns)."""

    @property
    def matrix(self) -> Array:
        """float32 array (subscribers x papers), scores in [0, 1]; 0 where a paper is vetoed."""
        ...

    def evidence(self, row: int, col: int) -> Evidence:
        """Reasons, vetoes and the marked snippet for one subscriber and paper."""
        ...


@runtime_checkable
class ManyScores(Scores, Protocol):
    """Scores that can also explain many pairs at once (faster than one ``evidence`` each)."""

    def pairs(self, rows: Array, cols: Array) -> list[Found]:
        """(reasons, (snippet, marks)) for each pair ``(rows[k], cols[k])``."""
        ...


class Scorer(Protocol):
    """Anything that scores papers for subscribers; see ``LexicalScorer``."""

    def score(
        self,
        subscribers: Sequence[Subscriber],
        papers: Sequence[Paper],
        *,
        corpus: Sequence[Paper] = (),
        liked: Mapping[str, Paper] | None = None,
    ) -> Scores:
        """Score every paper for every subscriber."""
        ...


class LexicalScores:
    """Scores from ``LexicalScorer``, keeping what is needed to explain any pair."""

    def __init__(
        self,
        matrix: Array,
        queries: Sequence[Query],
        matrices: Matrices,
        likes: Likes,
    ) -> None:
        self._matrix = matrix
        self._queries = queries
        self._matrices = matrices
        self._explainer = Explainer(queries, matrices, likes)

    @property
    def matrix(self) -> Array:
        """float32 array (subscribers x papers) of scores in [0, 1]."""
        return self._matrix

    def evidence(self, row: int, col: int) -> Evidence:
        """Reasons, vetoes and the marked snippet for one subscriber and paper."""
        (reasons, (snippet, marks)), *_ = self.pairs(np.array([row]), np.array([col]))
        return Evidence(reasons, vetoes(self._queries[row], col, self._matrices), snippet, marks)

    def pairs(self, rows: Array, cols: Array) -> list[Found]:
        """(reasons, (snippet, marks)) for each pair ``(rows[k], cols[k])``."""
        return self._explainer.pairs(rows, cols)


class LexicalScorer:
    """BM25F phrase matching of keywords, a soft description query, authors, categories, likes."""

    def score(
        self,
        subscribers: Sequence[Subscriber],
        papers: Sequence[Paper],
        *,
        corpus: Sequence[Paper] = (),
        liked: Mapping[str, Paper] | None = None,
    ) -> LexicalScores:
        """Score every paper for every subscriber, in blocks of ``CHUNK`` subscribers."""
        profile_text = [text for s in subscribers for text in s.interests.written]
        collection = Collection.build(papers, corpus, profile_text)
        compiler = Compiler(collection)
        queries = compiler.compile(subscribers)
        matrices = Matrices(collection, compiler.vocabulary)
        likes = Likes(collection, dict(liked or {}))
        matrix = np.zeros((len(queries), len(papers)), np.float32)
        for start in range(0, len(queries), CHUNK):
            block = queries[start : start + CHUNK]
            signals = compute(block, matrices, likes)
            has_keywords = np.array([bool(q.keywords) for q in block])
            has_topic = np.array([q.topical or bool(q.authors) for q in block])
            has_stated = np.array([bool(q.keywords or q.described or q.authors) for q in block])
            matrix[start : start + len(block)] = combine(
                signals, has_keywords, has_topic, has_stated
            )
        return LexicalScores(matrix, queries, matrices, likes)
