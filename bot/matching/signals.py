"""Vectorised signals: every profile against every paper with sparse matrix products.

Each signal is a (subscribers x papers) array in [0, 1]: keywords (soft OR of phrase matches),
description (share of the soft query found), authors, categories and liked papers (cosine).
Subscribers are processed in chunks so memory stays bounded for any number of them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bot.matching.index import MAX_PHRASE, Collection, Doc, Feature
from bot.matching.query import Query, Weights
from bot.matching.text import fold, name_key, terms_of
from bot.models import Paper

Array = np.ndarray
Marks = tuple[tuple[int, int], ...]


@dataclass
class Signals:
    """Signal arrays for a block of subscribers (rows) and today's papers (columns)."""

    keywords: Array
    description: Array
    authors: Array
    categories: Array
    likes: Array
    vetoed: Array


class Matrices:
    """Today's papers as sparse feature matrices, built once for every query feature in use."""

    def __init__(self, collection: Collection, queries: Sequence[Query]) -> None:
        self.collection = collection
        self.columns: dict[Feature, int] = {}
        for query in queries:
            for phrase in (*query.keywords, *query.excludes):
                for feature in phrase.weights:
                    self.columns.setdefault(feature, len(self.columns))
            for term in query.description:
                self.columns.setdefault(term, len(self.columns))
        wanted = frozenset(f for f in self.columns if isinstance(f, tuple))
        lengths = sorted({len(p) for p in wanted if len(p) <= MAX_PHRASE})
        rows, cols, vals = [], [], []
        self.values: list[dict[Feature, float]] = []
        self.in_title: list[frozenset[Feature]] = []
        for j, doc in enumerate(collection.docs):
            values, in_title = collection.saturated(doc, wanted, lengths)
            self.values.append(values)
            self.in_title.append(in_title)
            for feature, value in values.items():
                col = self.columns.get(feature)
                if col is not None:
                    rows.append(col)
                    cols.append(j)
                    vals.append(value)
        shape = (len(self.columns), len(collection.docs))
        self.docs = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=shape)
        self.present = self.docs.copy()
        self.present.data[:] = 1.0
        self._authors = _author_index(collection.docs)
        # Snippets already made, by (paper column, words marked); see ``evidence``.
        self.snippets: dict[tuple[int, frozenset[str]], tuple[str, Marks]] = {}

    def weights(self, rows: Sequence[Weights]) -> sp.csr_matrix:
        """Rows of feature weights as a sparse matrix over this vocabulary."""
        indptr: list[int] = [0]
        indices: list[int] = []
        data: list[float] = []
        column = self.columns.__getitem__
        for weights in rows:
            indices.extend(map(column, weights))
            data.extend(weights.values())
            indptr.append(len(indices))
        shape = (len(rows), len(self.columns))
        return sp.csr_matrix((np.array(data, np.float32), indices, indptr), shape=shape)

    def authors(self, query: Query) -> list[int]:
        """Columns of papers written by someone the query follows (see ``same_person``)."""
        found: set[int] = set()
        for wanted in query.authors:
            family, initials = name_key(wanted)
            first = initials[0] if initials else ""
            found.update(
                j
                for j, initial in self._authors.get(family, ())
                if not first or not initial or initial == first
            )
        return sorted(found)


def _author_index(docs: Sequence[Doc]) -> dict[str, list[tuple[int, str]]]:
    """Family name -> (paper column, first initial or "") of every author of every paper."""
    index: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for j, doc in enumerate(docs):
        for name in doc.paper.authors:
            family, initials = name_key(name)
            if family:
                index[family].append((j, initials[0] if initials else ""))
    return index


def _grouped(matrix: sp.csr_matrix, docs: sp.csr_matrix, owners: Array, n: int) -> Array:
    """Per owner, the soft OR ``1 - prod(1 - m)`` of the rows' matches against ``docs``."""
    if matrix.shape[0] == 0:
        return np.zeros((n, docs.shape[1]), np.float32)
    match = sp.csr_matrix(matrix @ docs)
    np.clip(match.data, 0.0, 0.999, out=match.data)
    match.data = np.log1p(-match.data)
    group = sp.csr_matrix(
        (np.ones(len(owners), np.float32), (owners, np.arange(len(owners)))), shape=(n, len(owners))
    )
    logs = (group @ match).toarray()
    return np.asarray(-np.expm1(logs), dtype=np.float32)


def _phrase_rows(queries: Sequence[Query], excludes: bool) -> tuple[list[Weights], Array]:
    rows: list[Weights] = []
    owners: list[int] = []
    for i, query in enumerate(queries):
        for phrase in query.excludes if excludes else query.keywords:
            rows.append({phrase.feature: 1.0} if excludes else phrase.weights)
            owners.append(i)
    return rows, np.array(owners, dtype=np.int64)


def term_vector(paper: Paper, collection: Collection) -> dict[str, float]:
    """Unit-length TF-IDF vector of a paper's title and abstract (for the like signal)."""
    counts = Counter(terms_of(f"{paper.title}. {paper.abstract}", collection.acronyms))
    weights = {t: (1.0 + math.log(c)) * collection.idf(t) for t, c in counts.items()}
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {t: w / norm for t, w in weights.items()}


def like_cosines(
    query: Query, paper: Paper, liked: Mapping[str, Paper], m: Matrices
) -> dict[str, float]:
    """Cosine between ``paper`` and each paper the query liked that is known."""
    if not any(pid in liked for pid in query.likes):
        return {}
    target = term_vector(paper, m.collection)
    return {
        pid: sum(w * target.get(t, 0.0) for t, w in term_vector(liked[pid], m.collection).items())
        for pid in query.likes
        if pid in liked
    }


def _likes(queries: Sequence[Query], liked: Mapping[str, Paper], m: Matrices) -> Array:
    """Per subscriber, the best cosine between a paper and any paper they liked."""
    out = np.zeros((len(queries), len(m.collection.docs)), np.float32)
    wanted = sorted({pid for q in queries for pid in q.likes if pid in liked})
    if not wanted:
        return out
    papers = [liked[pid] for pid in wanted] + [d.paper for d in m.collection.docs]
    vocab: dict[str, int] = {}
    indptr, indices, data = [0], [], []
    for paper in papers:
        for term, weight in term_vector(paper, m.collection).items():
            indices.append(vocab.setdefault(term, len(vocab)))
            data.append(weight)
        indptr.append(len(indices))
    vectors = sp.csr_matrix(
        (np.array(data, np.float32), indices, indptr), (len(papers), len(vocab))
    )
    sims = np.asarray((vectors[: len(wanted)] @ vectors[len(wanted) :].T).todense(), np.float32)
    row_of = {pid: r for r, pid in enumerate(wanted)}
    for i, query in enumerate(queries):
        rows = [row_of[pid] for pid in query.likes if pid in row_of]
        if rows:
            out[i] = sims[rows].max(axis=0)
    return out


def compute(queries: Sequence[Query], m: Matrices, liked: Mapping[str, Paper]) -> Signals:
    """Every signal for ``queries`` (one block of subscribers) against today's papers."""
    n, p = len(queries), len(m.collection.docs)
    rows, owners = _phrase_rows(queries, excludes=False)
    keywords = _grouped(m.weights(rows), m.docs, owners, n)
    description = np.asarray((m.weights([q.description for q in queries]) @ m.docs).todense())
    rows, owners = _phrase_rows(queries, excludes=True)
    vetoed = _grouped(m.weights(rows), m.present, owners, n) > 0
    authors = np.zeros((n, p), np.float32)
    categories = np.zeros((n, p), np.float32)
    paper_categories = [frozenset(fold(c) for c in d.paper.categories) for d in m.collection.docs]
    for i, query in enumerate(queries):
        authors[i, m.authors(query)] = 1.0
        if query.categories:
            categories[i] = [bool(query.categories & cats) for cats in paper_categories]
    likes = _likes(queries, liked, m)
    return Signals(keywords, description.astype(np.float32), authors, categories, likes, vetoed)
