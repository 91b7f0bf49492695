"""Profile descriptions compiled in bulk: one sparse row of IDF-weighted terms per distinct text.

Each row holds the description's terms in the order they first appear, weighted by IDF with
sublinear counts and summing to 1 (the soft query), with the word written for each term.
Everything after splitting the texts into words is array work over all profiles at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from itertools import chain

import numpy as np
import scipy.sparse as sp

from bot.matching.text import WORD

Array = np.ndarray
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

    ``terms`` gives the columns of one word's terms (analysing it when new) and ``idf`` the IDF
    of a column. ``weights`` (float64) and ``surface`` (1 + index into ``words``) share one
    sparsity structure; their width is given to ``matrices(width)`` once every column is known.
    """

    def __init__(self, texts: Mapping[str, int], terms: Callable[[str], tuple[int, ...]]):
        found = [WORD.findall(_as_written(text)) for text in texts]
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
        self._entries = (text, columns[starts[word[occurrence]] + k], word[occurrence])
        self._rows = len(found)

    def weigh(self, idf: Array) -> None:
        """Weigh each row's terms by ``idf`` (per column) times ``1 + log count``, summing to 1."""
        text, col, word = self._entries
        width = int(col.max()) + 1 if len(col) else 1
        unique, first, inverse = np.unique(text * width + col, True, True)
        order = np.argsort(first)
        count = np.bincount(inverse)[order]
        self.text, self.col = unique[order] // width, unique[order] % width
        most = int(count.max()) if len(count) else 1
        logs = np.array([1 + math.log(c) if c > 1 else 1.0 for c in range(most + 1)])
        raw = idf[self.col] * logs[count]  # times 1.0 (exact) where a term occurs once
        lengths = np.bincount(self.text, minlength=self._rows)
        ends = np.cumsum(lengths).tolist()
        values = raw.tolist()
        totals = [sum(values[a:b]) for a, b in zip([0, *ends][:-1], ends, strict=True)]
        self.weights = raw / np.array(totals)[self.text] if len(raw) else raw
        self.word = word[first[order]]
        self.indptr = np.concatenate([[0], np.cumsum(lengths)])
        self.lengths = lengths

    def matrices(self, width: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(weights, surface word + 1) as (texts x ``width``) sparse matrices."""
        shape = (self._rows, width)
        weights = sp.csr_matrix((self.weights, self.col, self.indptr), shape=shape)
        surface = sp.csr_matrix((self.word + 1, self.col, self.indptr), shape=shape)
        return weights, surface
