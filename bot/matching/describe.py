"""Profile descriptions compiled in bulk: one sparse row of weighted features per distinct text.

Each row holds the description's terms in the order they first appear, weighted by IDF with
sublinear counts, then the pairs of words it writes next to each other ("policy gradients",
"video-text") that some paper also holds, as phrases. Terms carry ``1 - PAIR_SHARE`` of the row
and the pairs ``PAIR_SHARE`` (each by the IDF of its two terms, once per occurrence), so a paper
writing the words together matches more of the description than one holding them apart; a row
without such pairs is its terms alone. A row sums to 1: the soft query. Each feature also keeps the
words written for it. Everything after splitting the texts into words is array work over all
profiles at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from itertools import chain

import numpy as np
import scipy.sparse as sp

from bot.text import SCAN

Array = np.ndarray
# Share of a description carried by its pairs of adjacent words: they rank papers writing the
# words together first, while the single terms still decide which papers match at all.
PAIR_SHARE = 0.25
Pairs = Callable[[Array, Array], Array]
"""Columns of the term pairs ``(first[k], second[k])`` that some paper holds, -1 for the rest."""
_SENTENCE_START = re.compile(r"(?:\A\s*|[.!?]\s+)[A-Z][a-z]+\b")
"""A capitalised word that starts the text or a sentence: capitalised only because of where
it stands, so it is named in lower case when a reason quotes it."""


_FIRST_WORD = re.compile(r"\s*[A-Z][a-z]+\b")


def _lower(start: re.Match[str]) -> str:
    return start[0].lower()


def _as_written(text: str) -> str:
    """``text`` with the words that start it and its sentences in lower case (see above)."""
    if "." in text or "!" in text or "?" in text:
        return _SENTENCE_START.sub(_lower, text)
    first = _FIRST_WORD.match(text)  # one sentence: only its start can be
    return text if first is None else first[0].lower() + text[first.end() :]


def expand(lengths: Array) -> tuple[Array, Array]:
    """For groups of ``lengths``: each item's group and its position inside the group."""
    group = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return group, np.arange(len(group)) - starts[group]


class Descriptions:
    """Rows of description weights over the vocabulary columns, one per distinct text.

    ``terms`` gives the columns of one word's terms (analysing it when new). ``weights``
    (float64) and ``surface`` (1 + index into ``words``: the word, or the two words, written for
    each feature) share one sparsity structure; their width is given to ``matrices(width)`` once
    every column is known. ``lengths`` counts each row's terms.
    """

    def __init__(self, texts: Mapping[str, int], terms: Callable[[str], tuple[int, ...]]):
        # Words, and "" for each punctuation mark (it has no terms and parts the words around it).
        found = [SCAN.findall(_as_written(text)) for text in texts]
        flat = list(chain.from_iterable(found))
        self.words = list(dict.fromkeys(flat))
        ids = {w: i for i, w in enumerate(self.words)}
        cols = [terms(w) for w in self.words]
        word = np.fromiter(map(ids.__getitem__, flat), np.int64, len(flat))
        n_terms = np.fromiter(map(len, cols), np.int64, len(cols))
        starts = np.cumsum(n_terms) - n_terms
        columns = np.fromiter(chain.from_iterable(cols), np.int64, int(n_terms.sum()))
        occurrence, k = expand(n_terms[word])
        text = np.repeat(np.arange(len(found)), [len(f) for f in found])[occurrence]
        # Per term written: its text, column, word, and place among the text's words.
        self._entries = (text, columns[starts[word[occurrence]] + k], word[occurrence], occurrence)
        self._rows = len(found)

    def weigh(self, idf: Array, pairs: Pairs) -> None:
        """Weigh each row's terms by ``idf`` (per column) times ``1 + log count``, and the pairs
        ``pairs`` finds by the IDF of their two terms per occurrence, in the shares above.

        A term of ``idf`` 0 (a word that describes what is wanted, not a topic: see
        ``text.DESCRIBING``) weighs nothing alone and is never named alone; a pair holding it
        weighs by its other term."""
        text, col, word, _ = self._entries
        weighed = idf[col] > 0
        text, col, word = text[weighed], col[weighed], word[weighed]
        width = int(col.max()) + 1 if len(col) else 1
        unique, first, inverse = np.unique(text * width + col, True, True)
        order = np.argsort(first)
        count = np.bincount(inverse)[order]
        rows, cols = unique[order] // width, unique[order] % width
        most = int(count.max()) if len(count) else 1
        logs = np.array([1 + math.log(c) if c > 1 else 1.0 for c in range(most + 1)])
        raw = idf[cols] * logs[count]  # times 1.0 (exact) where a term occurs once
        lengths = np.bincount(rows, minlength=self._rows)
        ends = np.cumsum(lengths).tolist()
        values = raw.tolist()
        totals = [sum(values[a:b]) for a, b in zip([0, *ends][:-1], ends, strict=True)]
        weights = raw / np.array(totals)[rows] if len(raw) else raw
        pair_rows, pair_cols, pair_weights, pair_words, paired = self._pairs(idf, pairs)
        weights = weights * np.where(paired, 1.0 - PAIR_SHARE, 1.0)[rows]
        # Each row: its terms, then its pairs (a stable sort keeps both in first-seen order).
        merged = np.argsort(np.concatenate([rows, pair_rows]), kind="stable")
        self.col = np.concatenate([cols, pair_cols])[merged]
        self.weights = np.concatenate([weights, pair_weights])[merged]
        self.word = np.concatenate([word[first[order]], pair_words])[merged]
        per_row = lengths + np.bincount(pair_rows, minlength=self._rows)
        self.indptr = np.concatenate([[0], np.cumsum(per_row)])
        self.lengths = lengths

    def _pairs(self, idf: Array, pairs: Pairs) -> tuple[Array, Array, Array, Array, Array]:
        """The pairs of adjacent words' terms some paper holds: per (row, pair) its row,
        column, weight and surface word; and per row whether it holds any such pair."""
        text, col, word, at = self._entries
        # Two terms are adjacent inside one word ("video-text") or in words written one after
        # the other (no stop word or punctuation between them).
        adjacent = (np.diff(at) <= 1) & (np.diff(text) == 0) & (np.diff(col) != 0)
        row, one, two = text[:-1][adjacent], col[:-1][adjacent], col[1:][adjacent]
        # Every occurrence counts: a phrase written again is what the description is about.
        raw = idf[one] + idf[two]
        column = pairs(one, two)
        held = np.flatnonzero((column >= 0) & (raw > 0))
        # Only the pairs some paper holds share the row: the others could match nothing, and
        # a row's weights sum to 1 whatever today's papers are.
        totals = np.bincount(row[held], weights=raw[held], minlength=self._rows)
        width = int(column.max()) + 1 if len(held) else 1
        unique, first, inverse = np.unique(row[held] * width + column[held], True, True)
        first = held[first]
        weight = np.bincount(inverse.ravel(), weights=raw[held], minlength=len(unique))
        order = np.argsort(first)
        first, weight = first[order], weight[order]
        # Each pair is named by the word, or the two words, first written for it.
        n = len(self.words)
        written = word[:-1][adjacent][first] * n + word[1:][adjacent][first]
        spans, which = np.unique(written, return_inverse=True)
        index = {w: i for i, w in enumerate(self.words)}
        names = [
            self.words[a] if a == b else f"{self.words[a]} {self.words[b]}"
            for a, b in zip((spans // n).tolist(), (spans % n).tolist(), strict=True)
        ]
        named = [index.setdefault(name, len(index)) for name in names]
        self.words = list(index)
        surface = np.array(named, np.int64)[which.ravel()]
        weight = PAIR_SHARE * weight / totals[row[first]] if len(first) else weight
        paired = np.bincount(row[held], minlength=self._rows) > 0
        return row[first], column[first], weight, surface, paired

    def matrices(self, width: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(weights, surface word + 1) as (texts x ``width``) sparse matrices."""
        shape = (self._rows, width)
        weights = sp.csr_matrix((self.weights, self.col, self.indptr), shape=shape)
        surface = sp.csr_matrix((self.word + 1, self.col, self.indptr), shape=shape)
        return weights, surface
