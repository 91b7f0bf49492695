"""Today's papers as sparse matrices over the features the compiled profiles use.

Rows of ``docs`` are features (columns of the ``Vocabulary``), columns are papers, values the
BM25F match of each feature in each paper. The distinct keyword phrases are matched against the
papers once, however many profiles share them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from bot.matching.index import MAX_PHRASE, Collection, Doc, Feature, Field
from bot.matching.query import Query, Vocabulary
from bot.text import Name, name_key, same_given

Array = np.ndarray
Marks = tuple[tuple[int, int], ...]
# A keyword is named in the reasons from this match value up (see ``keyword_logs``).
REASON_FROM = 0.3


def sparse_rows(
    cols: Iterable[Sequence[int]], values: Iterable[Iterable[float]], width: int, dtype: type
) -> sp.csr_matrix:
    """A CSR matrix with one row per item of ``cols`` (entries kept in the order given)."""
    indptr: list[int] = [0]
    indices: list[int] = []
    data: list[float] = []
    for row_cols, row_values in zip(cols, values, strict=True):
        indices.extend(row_cols)
        data.extend(row_values)
        indptr.append(len(indices))
    shape = (len(indptr) - 1, width)
    return sp.csr_matrix((np.array(data, dtype), indices, indptr), shape=shape)


def ones_at(cols: Sequence[Sequence[int]], width: int, dtype: type) -> sp.csr_matrix:
    """A CSR matrix with a row per item of ``cols``, 1 in each of its columns."""
    return sparse_rows(cols, ([1.0] * len(row) for row in cols), width, dtype)


def _presence(lists: Sequence[Iterable[int]], width: int) -> sp.csr_matrix:
    """Papers x features, 1 where a paper's list holds the feature's column."""
    return ones_at([sorted(set(cols)) for cols in lists], width, np.float64)


# Largest dense copy (entries) made of a sparse matrix to speed up products with it.
DENSE_LIMIT = 64_000_000


class DenseRows:
    """A sparse matrix's non-empty rows kept dense, so sparse rows times it is one fast pass.

    ``left @ matrix`` gives the same float32 values as the sparse product: each entry sums the
    same products in the same order (empty rows only ever add zeros). Past ``DENSE_LIMIT``
    entries the sparse matrix is used as it is.
    """

    def __init__(self, matrix: sp.csr_matrix) -> None:
        active = np.flatnonzero(np.diff(matrix.indptr))
        self.sparse = matrix
        self.index = np.full(matrix.shape[0], -1, np.int64)
        self.index[active] = np.arange(len(active))
        fits = len(active) * matrix.shape[1] <= DENSE_LIMIT
        self.dense = matrix[active].toarray() if fits else None

    def times(self, left: sp.csr_matrix) -> Array:
        """The dense array ``left @ matrix``."""
        if self.dense is None:
            return np.asarray(sp.csr_matrix(left @ self.sparse).toarray())
        cols = self.index[left.indices]
        keep = cols >= 0
        indptr = np.concatenate([[0], np.cumsum(keep)])[left.indptr]
        shape = (left.shape[0], self.dense.shape[0])
        rows = sp.csr_matrix((left.data[keep], cols[keep], indptr), shape=shape)
        return np.asarray(rows @ self.dense)


class Matrices:
    """Feature matrices of today's papers, built once for every query feature in use."""

    def __init__(self, collection: Collection, vocabulary: Vocabulary) -> None:
        self.collection = collection
        self.columns = vocabulary.columns
        self.features = list(self.columns)
        self.phrases = vocabulary.phrases
        width, p = len(self.features), len(collection.docs)
        self.docs64, title = self._docs(collection, width)
        self.docs = sp.csr_matrix(self.docs64.astype(np.float32))
        self.present = self.docs.copy()
        self.present.data[:] = 1.0
        self.docs_t = sp.csr_matrix(self.docs64.T)
        self.docs_t.sort_indices()
        fields = [d.abstract if d.abstract.tokens else d.title for d in collection.docs]
        # Papers x features: in the title; among the words of the field snippets come from.
        self.in_title = _presence(title, width)
        self.in_field = _presence([_cols(f, self.columns) for f in fields], width)
        weights = [phrase.weights.values() for phrase in self.phrases]
        cols = [phrase.cols for phrase in self.phrases]
        match = sp.csr_matrix(sparse_rows(cols, weights, width, np.float32) @ self.docs)
        np.clip(match.data, 0.0, 0.999, out=match.data)
        named = match.data >= REASON_FROM
        match.data = np.log1p(-match.data)
        # Per distinct phrase and paper, log(1 - match): profiles sum these rows. The first
        # half holds the matches strong enough to be named, the second half the others.
        self.keyword_logs = DenseRows(sp.vstack([_kept(match, named), _kept(match, ~named)], "csr"))
        self.dense_docs = DenseRows(self.docs)
        self._keyword_values = sp.csr_matrix((len(self.phrases), p))
        self._weights64: sp.csr_matrix | None = sparse_rows(cols, weights, width, np.float64)
        # Profile descriptions (rows) x features: weights, and the word written for each term.
        assert vocabulary.descriptions is not None
        self.descriptions, self.surface = vocabulary.descriptions.matrices(width)
        self.descriptions32 = sp.csr_matrix(self.descriptions.astype(np.float32))
        self.words = vocabulary.descriptions.words
        self._authors = _author_index(collection.docs)
        self.column_of = {d.paper.id: j for j, d in enumerate(collection.docs)}
        self._author_cols: dict[str, frozenset[int]] = {}
        # Snippets already made, by (paper column, columns of the words marked).
        self.snippets: dict[tuple[int, tuple[int, ...]], tuple[str, Marks]] = {}
        names = sorted((f, c) for c, f in enumerate(self.features) if isinstance(f, str))
        self.term_rank = np.full(width, width, np.int64)
        self.term_rank[[c for _, c in names]] = np.arange(len(names))

    def _docs(self, collection: Collection, width: int) -> tuple[sp.csr_matrix, list[list[int]]]:
        """Features x papers BM25F values, and per paper the columns of its title features."""
        wanted = frozenset(f for f in self.columns if isinstance(f, tuple))
        lengths = sorted({len(p) for p in wanted if len(p) <= MAX_PHRASE})
        rows, cols, vals, title = [], [], [], []
        column = self.columns.get
        for j, doc in enumerate(collection.docs):
            values, in_title = collection.saturated(doc, wanted, lengths)
            for feature, value in values.items():
                col = column(feature)
                if col is not None:
                    rows.append(col)
                    cols.append(j)
                    vals.append(value)
            title.append([c for f in in_title if (c := column(f)) is not None])
        shape = (width, len(collection.docs))
        docs = sp.csr_matrix((np.array(vals, np.float64), (rows, cols)), shape=shape)
        return docs, title

    @property
    def keyword_values(self) -> sp.csr_matrix:
        """Per distinct phrase and paper, its match in float64 (for explanations)."""
        if self._weights64 is not None:
            self._keyword_values = sp.csr_matrix(self._weights64 @ self.docs64)
            self._weights64 = None
        return self._keyword_values

    def author_cols(self, wanted: str) -> frozenset[int]:
        """Columns of papers with an author who is the person ``wanted`` names."""
        found = self._author_cols.get(wanted)
        if found is None:
            name = name_key(wanted)
            found = self._author_cols[wanted] = frozenset(
                j
                for key in name.keys
                for j, author in self._authors.get(key, ())
                if same_given(name, author)
            )
        return found

    def authors(self, query: Query) -> list[int]:
        """Columns of papers written by someone the query follows (see ``same_person``)."""
        found: set[int] = set()
        for wanted in query.authors:
            found.update(self.author_cols(wanted))
        return sorted(found)


def _kept(matrix: sp.csr_matrix, keep: Array) -> sp.csr_matrix:
    """``matrix`` with only the stored entries where ``keep`` holds."""
    kept = matrix.copy()
    kept.data = np.where(keep, kept.data, 0.0).astype(kept.dtype)
    kept.eliminate_zeros()
    return kept


def _cols(field: Field, columns: Mapping[Feature, int]) -> list[int]:
    """Columns of the terms of ``field`` that have one."""
    return [c for t in field.positions if (c := columns.get(t)) is not None]


def _author_index(docs: Sequence[Doc]) -> dict[str, list[tuple[int, Name]]]:
    """Family name key -> (paper column, name) of every author of every paper."""
    index: dict[str, list[tuple[int, Name]]] = defaultdict(list)
    for j, doc in enumerate(docs):
        for author in doc.paper.authors:
            name = name_key(author)
            for key in name.keys:
                index[key].append((j, name))
    return index
