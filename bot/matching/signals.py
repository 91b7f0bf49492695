"""Vectorised signals: every profile against every paper with sparse matrix products.

Each signal is a (subscribers x papers) array in [0, 1]: keywords (soft OR of phrase matches,
the matches too weak to be named capped together), description (share of the soft query found),
keyword coverage (share of the other keywords also found as written), authors, categories and
liked papers (standing: see ``likes``). Subscribers are processed in chunks so memory stays
bounded for any number of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.matching.likes import Likes
from bot.matching.matrices import Array, Matrices, ones_at
from bot.matching.query import Query
from bot.text import fold

# The most that keyword matches too weak to be named can add up to (see ``_keywords``).
WEAK_KEYWORDS = 0.4


@dataclass
class Signals:
    """Signal arrays for a block of subscribers (rows) and today's papers (columns)."""

    keywords: Array
    description: Array
    authors: Array
    categories: Array
    likes: Array
    vetoed: Array
    coverage: Array


def _likes(queries: Sequence[Query], likes: Likes, papers: int) -> Array:
    """Per subscriber, the best standing of a paper against any paper they liked."""
    out = np.zeros((len(queries), papers), np.float32)
    wanted = sorted({pid for q in queries for pid in likes.known(q.likes)})
    if not wanted:
        return out
    standing = likes.rows(wanted)
    row_of = {pid: r for r, pid in enumerate(wanted)}
    for i, query in enumerate(queries):
        rows = [row_of[pid] for pid in likes.known(query.likes)]
        if rows:
            out[i] = standing[rows].max(axis=0)
    return out


def _keywords(queries: Sequence[Query], m: Matrices) -> Array:
    """Per profile, the soft OR ``1 - prod(1 - match)`` of its distinct keyword phrases: one
    written twice, or in two forms with the same terms ("diffusion model", "diffusion models",
    "MoE" where "mixture of experts (MoE)" is defined), counts once.

    The matches too weak to be named in the reasons (a word or two of a keyword, as "model"
    of "world models") add up to at most ``WEAK_KEYWORDS``: in a profile of many broad
    keywords sharing words, they would otherwise carry a paper that none of them names."""
    ids = [sorted({phrase.id for phrase in q.keywords}) for q in queries]
    shift = len(m.phrases)
    weak = [[i + shift for i in row] for row in ids]
    group = ones_at([*ids, *weak], 2 * shift, np.float32)
    logs = m.keyword_logs.times(group)
    n = len(queries)
    floor = np.float32(np.log1p(-WEAK_KEYWORDS))
    total = logs[:n] + np.maximum(logs[n:], floor)
    return np.asarray(-np.expm1(total), dtype=np.float32)


def _coverage(queries: Sequence[Query], m: Matrices) -> Array:
    """Share of a profile's other keywords also found as written: (hits - 1) / (keywords - 1)."""
    cols = [sorted({phrase.col for phrase in q.keywords}) for q in queries]
    group = ones_at(cols, len(m.features), np.float32)
    hits = np.asarray((group @ m.present).toarray())
    others = np.array([max(len(row) - 1, 1) for row in cols], np.float32)[:, None]
    return np.asarray(np.clip((hits - 1.0) / others, 0.0, 1.0), np.float32)


def _vetoed(queries: Sequence[Query], m: Matrices) -> Array:
    """Where a paper holds one of a profile's excluded phrases, or is one the profile liked
    (read already: it says what to look for, it is not news)."""
    cols = [[phrase.col for phrase in q.excludes] for q in queries]
    group = ones_at(cols, len(m.features), np.float32)
    vetoed = np.asarray((group @ m.present).toarray() > 0)
    for i, query in enumerate(queries):
        for pid in query.likes:
            j = m.column_of.get(pid)
            if j is not None:
                vetoed[i, j] = True
    return vetoed


def compute(queries: Sequence[Query], m: Matrices, likes: Likes) -> Signals:
    """Every signal for ``queries`` (one block of subscribers) against today's papers."""
    n, p = len(queries), len(m.collection.docs)
    keywords = _keywords(queries, m)
    weights = m.descriptions32[[q.description for q in queries]]
    description = m.dense_docs.times(weights)
    authors = np.zeros((n, p), np.float32)
    categories = np.zeros((n, p), np.float32)
    paper_categories = [frozenset(fold(c) for c in d.paper.categories) for d in m.collection.docs]
    for i, query in enumerate(queries):
        if query.authors:
            authors[i, m.authors(query)] = 1.0
        if query.categories:
            categories[i] = [bool(query.categories & cats) for cats in paper_categories]
    return Signals(
        keywords,
        description,
        authors,
        categories,
        _likes(queries, likes, p),
        _vetoed(queries, m),
        _coverage(queries, m),
    )
