"""Evidence for many (profile, paper) pairs at once, with array operations per block.

For each pair: keyword reasons (the phrase matches the keyword signal sums, looked up in the
distinct-phrase x paper product), the description's top terms (one sparse elementwise product of
the profiles' weights and the papers' values), and the snippet (keyword terms the paper holds,
else the top description terms). A pair with a score but nothing strong enough to be named is
still told why: its strongest keyword match, saying how much of the keyword was found, and the
description words found. Reason strings and tuples are shared between pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from bot.matching import evidence as ev
from bot.matching.describe import expand
from bot.matching.likes import Likes
from bot.matching.matrices import REASON_FROM, Array, Marks, Matrices
from bot.matching.query import Phrase, Query

# Per pair: its reasons, and its snippet with the marked spans (shared between pairs).
Found = tuple[tuple[str, ...], tuple[str, Marks]]
_WHERE = (" (all its words)", "", " (title)")
"""Where a keyword was found: its words but not side by side, as written, in the title."""
# The match values the keyword signal counts as named are computed in float32, those here in
# float64: a value at the boundary is named whichever side of it the other one fell.
_NAMED_FROM = REASON_FROM - 1e-6
T = TypeVar("T")


def _lookup(matrix: sp.csr_matrix, rows: Array, cols: Array) -> Array:
    """``matrix[rows[k], cols[k]]`` for every k, as a flat array."""
    if not len(rows):
        return np.zeros(0, matrix.dtype)
    return np.asarray(matrix[rows, cols]).ravel()


def _split(items: list[T], counts: Array) -> list[list[T]]:
    """``items`` cut into consecutive runs of ``counts``."""
    ends = np.cumsum(counts).tolist()
    return [items[a:b] for a, b in zip([0, *ends][:-1], ends, strict=True)]


def _strongest(pair: Array, value: Array, pairs: int) -> Array:
    """Per pair, the entry of its largest positive ``value`` (the first of equals), else -1."""
    out = np.full(pairs, -1, np.int64)
    order = np.lexsort((-value, pair))
    order = order[value[order] > 0]
    first = np.ones(len(order), bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    out[pair[order][first]] = order[first]
    return out


def _distinct(phrases: Sequence[Phrase]) -> list[Phrase]:
    """``phrases`` without repeats of the same terms (the first one written is kept)."""
    seen: set[int] = set()
    out = []
    for phrase in phrases:
        if phrase.id not in seen:
            seen.add(phrase.id)
            out.append(phrase)
    return out


def _described(words: list[str]) -> str:
    """The ``description:`` reason naming ``words`` (each once, and not again when named inside
    a pair of words)."""
    if len(set(words)) < len(words):
        words = list(dict.fromkeys(words))
    if " " in "".join(words):
        inside = {word for name in words if " " in name for word in name.split(" ")}
        words = [name for name in words if " " in name or name not in inside]
    return "description: " + ", ".join(words)


def _where(label: str, where: int) -> str:
    """How a keyword reason says where its keyword was found (``_WHERE``); a keyword of two
    words, spaced or hyphenated ("score-based"), says "both words"."""
    if where == 0 and len(label.replace("-", " ").split()) == 2:
        return " (both words)"
    return _WHERE[where]


class Explainer:
    """Reasons and snippets for pairs of profile rows and paper columns."""

    def __init__(self, queries: Sequence[Query], m: Matrices, likes: Likes):
        self.queries, self.m, self.likes = queries, m, likes
        self._texts: dict[tuple[str, int], str] = {}
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}

    def pairs(self, rows: Array, cols: Array) -> list[Found]:
        """(reasons, (snippet, marks)) for each pair ``(rows[k], cols[k])``."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        if not len(rows):
            return []
        unique, inverse = np.unique(rows, return_inverse=True)
        queries = [self.queries[i] for i in unique.tolist()]
        keywords, matched, weak = self._keywords(queries, inverse, cols)
        top, names, described = self._description(queries, inverse, cols)
        wanted = self._marked(matched, cols, top)
        out: list[Found] = []
        m, shared, snippets = self.m, self._shared, self.m.snippets
        every = self.queries
        for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
            query = every[i]
            if query.authors or query.likes or query.categories:
                reasons = tuple(self._others(query, j, keywords[k], described[k], names[k]))
            elif described[k]:
                reasons = (*keywords[k], _described(names[k]))
            else:
                reasons = tuple(keywords[k])
            if not reasons:
                reasons = self._weakest(weak[k], j, names[k])
            key = (j, wanted[k])
            out.append((shared.setdefault(reasons, reasons), snippets.get(key) or ev.shown(key, m)))
        return out

    def _others(
        self, query: Query, j: int, keywords: list[str], described: bool, names: list[str]
    ) -> list[str]:
        """All the reasons, when there are more than keyword ones: in the order shown."""
        reasons = ev.author_reasons(query, j, self.m) if query.authors else []
        reasons += keywords
        if query.likes:
            reasons += ev.like_reasons(query, j, self.likes)
        if described:
            reasons.append(_described(names))
        if query.categories:
            reasons += ev.category_reasons(query, self.m.collection.docs[j].paper)
        return reasons

    def _weakest(self, weak: Phrase | None, j: int, names: list[str]) -> tuple[str, ...]:
        """The reasons of a pair that nothing matched strongly enough to be named (weak
        matches add up, to a point: see ``signals``): its strongest keyword match, saying how
        much of the keyword was found, and the description words found."""
        reasons = [self._partly(weak, j)] if weak is not None else []
        if names:
            reasons.append(_described(names))
        return tuple(reasons)

    def _partly(self, phrase: Phrase, j: int) -> str:
        """The ``keyword:`` reason of a weak match of ``phrase`` in paper ``j``."""
        columns, present = self.m.columns, self.m.present
        words = [terms for _, terms in phrase.words if terms]
        found = sum(all(present[columns[t], j] > 0 for t in terms) for terms in words)
        if 0 < found < len(words):
            return f"keyword: {phrase.label} ({'one' if found == 1 else 'some'} of its words)"
        where = 2 if self.m.in_title[j, phrase.col] > 0 else int(present[phrase.col, j] > 0)
        return f"keyword: {phrase.label}{_where(phrase.label, where)}"

    def _keywords(
        self, queries: list[Query], inverse: Array, cols: Array
    ) -> tuple[list[list[str]], sp.csr_matrix, list[Phrase | None]]:
        """Per pair, its keyword reasons (best match first, then in the profile's order), a
        row per pair with 1 at the columns of the terms of the keywords named (what its
        snippet marks), and the keyword it matches best when none is named."""
        phrases: list[Phrase] = []
        counts: list[int] = []
        for query in queries:
            kept = _distinct(query.keywords)
            phrases += kept
            counts.append(len(kept))
        lengths = np.asarray(counts, np.int64)
        starts = np.cumsum(lengths) - lengths
        pair, position = expand(lengths[inverse])
        which = starts[inverse][pair] + position
        ids = np.array([p.id for p in phrases], np.int64)[which]
        at = cols[pair]
        value = _lookup(self.m.keyword_values, ids, at)
        weak = _strongest(pair, value, len(cols))
        weak_phrases = [phrases[which[e]] if e >= 0 else None for e in weak.tolist()]
        keep = value >= _NAMED_FROM
        pair, position, which, ids, at, value = (
            a[keep] for a in (pair, position, which, ids, at, value)
        )
        feature = np.array([p.col for p in phrases], np.int64)[which]
        where = 2 * (_lookup(self.m.in_title, at, feature) > 0)
        where += (where == 0) & (_lookup(self.m.present, feature, at) > 0)
        order = np.lexsort((position, -value, pair))
        texts = self._texts
        labels = [phrases[w].label for w in which[order].tolist()]
        items = [
            texts.get(key) or texts.setdefault(key, f"keyword: {key[0]}{_where(*key)}")
            for key in zip(labels, where[order].tolist(), strict=True)
        ]
        reasons = _split(items, np.bincount(pair, minlength=len(cols)))
        return reasons, self._terms_of(phrases, pair, which, len(cols)), weak_phrases

    def _terms_of(
        self, phrases: list[Phrase], pair: Array, which: Array, pairs: int
    ) -> sp.csr_matrix:
        """A row per pair with 1 at the term columns of its phrases ``phrases[which]``."""
        # The columns of a phrase's terms follow the phrase's own (when it has several terms).
        terms = [phrase.cols[1:] or phrase.cols for phrase in phrases]
        lengths = np.array([len(t) for t in terms], np.int64)
        flat = np.array([c for t in terms for c in t], np.int64)
        entry, position = expand(lengths[which])
        at = (np.cumsum(lengths) - lengths)[which][entry] + position
        ones = np.ones(len(entry))
        shape = (pairs, len(self.m.features))
        return sp.csr_matrix((ones, (pair[entry], flat[at])), shape=shape)

    def _description(
        self, queries: list[Query], inverse: Array, cols: Array
    ) -> tuple[list[tuple[int, ...]], list[list[str]], list[bool]]:
        """Per pair, the description terms found that weigh most (best first, ties by term):
        their columns, the words written for them, and whether they carry enough of the
        description to be named."""
        m = self.m
        rows = np.array([q.description for q in queries], np.int64)[inverse]
        found = sp.csr_matrix(m.descriptions[rows].multiply(m.docs_t[cols]))
        pair = np.repeat(np.arange(len(cols)), np.diff(found.indptr))
        order = np.lexsort((m.term_rank[found.indices], -found.data, pair))
        pair, col, value = pair[order], found.indices[order], found.data[order]
        position = np.arange(len(pair)) - found.indptr[pair]
        keep = position < ev.DESCRIPTION_TERMS
        pair, col, value, position = pair[keep], col[keep], value[keep], position[keep]
        total = np.zeros(len(cols))
        for k in range(ev.DESCRIPTION_TERMS):
            at = position == k
            total[pair[at]] += value[at]
        heaviest = np.zeros(len(cols))
        heaviest[pair[position == 0]] = value[position == 0]
        named = value >= heaviest[pair] * ev.DESCRIPTION_NAMED_SHARE
        pair, col = pair[named], col[named]
        counts = np.bincount(pair, minlength=len(cols))
        top = [tuple(t) for t in _split(col.tolist(), counts)]
        words = m.words
        names = [words[w - 1] for w in _lookup(m.surface, rows[pair], col).tolist()]
        described = (total >= ev.DESCRIPTION_REASON_FROM).tolist()
        return top, _split(names, counts), described

    def _marked(
        self, matched: sp.csr_matrix, cols: Array, top: list[tuple[int, ...]]
    ) -> list[tuple[int, ...]]:
        """Per pair, the columns of the words its snippet marks: the terms of the keywords
        named in its reasons that the snippet's field holds, else the top description terms."""
        found = sp.csr_matrix(matched.multiply(self.m.in_field[cols]))
        found.sort_indices()
        held = _split(found.indices.tolist(), np.diff(found.indptr))
        return [tuple(h) if h else tuple(sorted(t)) for h, t in zip(held, top, strict=True)]
