"""The like signal: how far a paper's similarity to a liked paper stands out from the day's.

Papers are unit TF-IDF vectors of title and abstract. A cosine alone says little: two unrelated
abstracts share common words and score 0.02-0.08, related ones 0.1-0.3, and both ranges move
with the length and vocabulary of the texts. So each liked paper's cosines are read against its
cosines to the day's papers, most of them unrelated: the signal (its *standing*) is how many
robust standard deviations (from the median absolute deviation) a cosine lies above their
median. A day of a few papers cannot be its own yardstick, so its median and spread are drawn
toward those of a typical day, as if ``PRIOR_PAPERS`` such papers were there too. Nor can a
day raise the bar above a typical day's (when most of its papers are on the liked paper's
topic, their cosines are the day's typical ones, and they would stand out from nothing): the
standing is the greater of the one against the day and the one against a typical day.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from bot.matching.index import Collection
from bot.matching.matrices import Array
from bot.models import Paper
from bot.text import terms_of

# Median and robust spread of the cosines between unrelated abstracts, and how many papers'
# worth of weight they carry against the day's own.
PRIOR_CENTER, PRIOR_SPREAD, PRIOR_PAPERS = 0.04, 0.025, 10
# Below this cosine two papers share only common words, however the day's others compare.
MIN_COSINE = 0.1
# The median absolute deviation of a normal distribution times this is its standard deviation.
MAD_TO_SD = 1.4826


def term_vector(paper: Paper, collection: Collection) -> dict[str, float]:
    """Unit-length TF-IDF vector of a paper's title and abstract."""
    counts = Counter(terms_of(f"{paper.title}. {paper.abstract}", collection.acronyms))
    weights = {t: (1.0 + math.log(c)) * collection.idf(t) for t, c in counts.items()}
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {t: w / norm for t, w in weights.items()}


def background(cosines: Array, own: Array) -> tuple[Array, Array]:
    """Per row (a liked paper), the median and robust spread of its cosines to the day's papers,
    drawn toward the prior's; ``own`` is True at the liked paper itself (not its own
    background)."""
    n = np.sum(~own, axis=1, keepdims=True)
    center = np.zeros((len(cosines), 1))
    spread = np.zeros((len(cosines), 1))
    if cosines.shape[1]:
        # A row with no other paper takes zeros: its share below is 0.
        others = np.where(own & (n > 0), np.nan, cosines)
        center = np.nanmedian(others, axis=1, keepdims=True)
        spread = MAD_TO_SD * np.nanmedian(np.abs(others - center), axis=1, keepdims=True)
    share = n / (n + PRIOR_PAPERS)
    center = share * center + (1.0 - share) * PRIOR_CENTER
    spread = share * spread + (1.0 - share) * PRIOR_SPREAD
    return center, spread


class Likes:
    """Today's papers as vectors, and how each stands against each liked paper.

    A liked paper's vector and background are made once, however many subscribers like it.
    """

    def __init__(self, collection: Collection, liked: Mapping[str, Paper]) -> None:
        self.collection, self.liked = collection, liked
        self._vocab: dict[str, int] = {}
        self._day: sp.csr_matrix | None = None
        self._vectors: dict[str, sp.csr_matrix] = {}
        self._backgrounds: dict[str, tuple[float, float]] = {}

    def known(self, likes: Sequence[str]) -> list[str]:
        """The ids of ``likes`` whose papers are at hand."""
        return [pid for pid in likes if pid in self.liked]

    def _matrix(self, papers: Sequence[Paper], grow: bool) -> sp.csr_matrix:
        """Rows of unit vectors over the day's vocabulary (made from the papers when ``grow``;
        other terms add nothing to a cosine with a day's paper)."""
        vocab, columns = self._vocab, self._vocab.get
        indptr, indices, data = [0], [], []
        for paper in papers:
            for term, weight in term_vector(paper, self.collection).items():
                col = vocab.setdefault(term, len(vocab)) if grow else columns(term)
                if col is not None:
                    indices.append(col)
                    data.append(weight)
            indptr.append(len(indices))
        shape = (len(papers), len(vocab))
        return sp.csr_matrix((np.array(data, np.float32), indices, indptr), shape)

    def _prepare(self, pids: Sequence[str]) -> sp.csr_matrix:
        """The vectors of ``pids`` (rows, known ids), their backgrounds made where missing."""
        if self._day is None:
            self._day = self._matrix([d.paper for d in self.collection.docs], grow=True)
        new = [pid for pid in dict.fromkeys(pids) if pid not in self._vectors]
        if new:
            made = self._matrix([self.liked[pid] for pid in new], grow=False)
            cosines = np.asarray((made @ self._day.T).toarray(), np.float64)
            ids = np.array([d.paper.id for d in self.collection.docs], object)
            center, spread = background(cosines, ids[None, :] == np.array(new, object)[:, None])
            for k, pid in enumerate(new):
                self._vectors[pid] = made[k]
                self._backgrounds[pid] = (float(center[k, 0]), float(spread[k, 0]))
        return sp.csr_matrix(sp.vstack([self._vectors[pid] for pid in pids]))

    def _standing(self, cosines: Array, pids: Sequence[str]) -> Array:
        """How many robust standard deviations each cosine (a row per pid) lies above the
        liked paper's background, or a typical day's if that is more; 0 below ``MIN_COSINE``."""
        center, spread = np.array([self._backgrounds[pid] for pid in pids]).T[:, :, None]
        day = (cosines - center) / spread
        typical = (cosines - PRIOR_CENTER) / PRIOR_SPREAD
        out = np.where(cosines < MIN_COSINE, 0.0, np.maximum(day, typical))
        return np.asarray(out, np.float32)

    def rows(self, pids: Sequence[str]) -> Array:
        """Standing of today's papers (columns) against each of ``pids`` (rows, known ids)."""
        if not pids:
            return np.zeros((0, len(self.collection.docs)), np.float32)
        vectors = self._prepare(pids)
        assert self._day is not None
        return self._standing((vectors @ self._day.T).toarray(), pids)

    def column(self, pids: Sequence[str], j: int) -> Array:
        """Standing of today's paper ``j`` against each of ``pids`` (known ids)."""
        if not pids:
            return np.zeros(0, np.float32)
        vectors = self._prepare(pids)
        assert self._day is not None
        return self._standing((vectors @ self._day[j].T).toarray(), pids)[:, 0]
