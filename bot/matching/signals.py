"""Vectorised signals: every profile against every paper with sparse matrix products.

Each signal is a (subscribers x papers) array in [0, 1]: keywords (soft OR of phrase matches,
the matches too weak to be named capped together), description (share of the soft query found;
alone, its terms re-weighed by the papers it matches best: see ``_feedback``),
keyword coverage (share of the other keywords also found as written), authors, categories and
liked papers (standing: see ``likes``). Subscribers are processed in chunks so memory stays
bounded for any number of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bot.matching.likes import Likes
from bot.matching.matrices import Array, Matrices, ones_at
from bot.matching.query import Query
from bot.text import fold

# The most that keyword matches too weak to be named can add up to (see ``_keywords``).
WEAK_KEYWORDS = 0.4
# The papers a description matches best, which re-weigh its terms (see ``_feedback``), and
# how much a term they all hold fully gains: up to this many times its own weight.
FEEDBACK_PAPERS = 10
FEEDBACK_GAIN = 1.0


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


def _description(queries: Sequence[Query], m: Matrices) -> Array:
    """Per profile, the share of its description each paper holds; a description that ranks
    papers alone (no keywords beside it) has its terms re-weighed first (see ``_feedback``)."""
    weights = m.descriptions32[[q.description for q in queries]]
    found = m.dense_docs.times(weights)
    alone = [i for i, q in enumerate(queries) if q.described and not q.keywords]
    if alone and found.shape[1]:
        found[alone] = _feedback(weights[alone], found[alone], m)
    return np.asarray(found, dtype=np.float32)


def _feedback(weights: sp.csr_matrix, found: Array, m: Matrices) -> Array:
    """The share of each description (``weights``) each paper holds once its terms are
    re-weighed by the papers holding most of it (``found``: the shares before).

    A description names its topic among words that are only context ("theory", "applications",
    "training"), all weighed alike by rarity. The ``FEEDBACK_PAPERS`` papers holding most of it
    show which of its terms the topic is written with: each term gains ``FEEDBACK_GAIN`` times
    its weight times its mean match among them (each paper counted by its share found), then
    the row is scaled back to sum to 1. Only the description's own terms move, and a paper's
    share found grows at most ``1 + FEEDBACK_GAIN`` times, so a day matching one word of a
    description weakly still matches it weakly."""
    n, papers = found.shape
    k = min(FEEDBACK_PAPERS, papers)
    # The best papers: those holding at least the k-th best share (all of them when tied).
    kth = np.partition(found, papers - k, axis=1)[:, papers - k]
    rows, cols = np.nonzero((found >= kth[:, None]) & (found > 0))
    share = found[rows, cols].astype(np.float64)
    share /= np.bincount(rows, weights=share, minlength=n)[rows]
    best = sp.csr_matrix((share, (rows, cols)), shape=(n, papers))
    held = best @ m.docs_t  # per feature, its mean match in the best papers
    grown = sp.csr_matrix(weights + FEEDBACK_GAIN * weights.multiply(held))
    sums = np.asarray(grown.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    grown = sp.csr_matrix(sp.diags(scale) @ grown, dtype=np.float32)
    return np.asarray(m.dense_docs.times(grown))


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
    description = _description(queries, m)
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
