"""Why a paper scored as it did for one profile: reasons, vetoes, and a marked snippet.

The reasons recompute, from the same matrices, the quantities the vectorised signals use, so the
words shown are the ones that actually moved the score. ``reasons`` does so for many pairs at
once; the functions here cover the per-pair parts (snippets, authors, likes, categories).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from bot.matching.combine import LIKE_FROM
from bot.matching.index import Field
from bot.matching.likes import Likes
from bot.matching.matrices import Marks, Matrices
from bot.matching.query import Query
from bot.models import Paper
from bot.text import Token, fold

DESCRIPTION_TERMS = 4
# The description is named in the reasons when its shown terms carry this much of it.
DESCRIPTION_REASON_FROM = 0.05
# A description term is named (and marked) only when it weighs at least this share of the
# heaviest one found in the paper: the others are filler ("making", "using").
DESCRIPTION_NAMED_SHARE = 1 / 3
# Characters of a liked paper's title its like: reason shows.
LIKED_TITLE = 60
SHORT_SENTENCE = 120
# Words that may sit between two marked words and be marked with them.
_GLUE = frozenset({"", "of", "for", "and", "the", "to"})


@dataclass(frozen=True, slots=True)
class Evidence:
    """The human side of one score."""

    reasons: tuple[str, ...] = ()
    vetoes: tuple[str, ...] = ()
    snippet: str = ""
    marks: tuple[tuple[int, int], ...] = ()


def _marks(text: str, start: int, tokens: Sequence[Token]) -> Marks:
    """Spans of ``tokens`` relative to ``start``; neighbours joined across short glue words."""
    marks: list[tuple[int, int]] = []
    for tok in tokens:
        if marks:
            gap = text[marks[-1][1] + start : tok.start]
            if len(gap) <= 4 and gap.strip(" -") in _GLUE:
                marks[-1] = (marks[-1][0], tok.end - start)
                continue
        marks.append((tok.start - start, tok.end - start))
    return tuple(marks)


def _best(field: Field, present: list[str], sentences: int) -> int:
    """The first sentence holding the most of the ``present`` terms."""
    if sentences < 2 or not present:
        return 0
    where = field.where
    if len(present) == 1:
        return where[present[0]][0]
    gains = [0] * sentences
    for term in present:
        for i in where[term]:
            gains[i] += 1
    return gains.index(max(gains))


def snippet(text: str, field: Field, wanted: Collection[str]) -> Evidence:
    """The sentence (two if short) of ``text`` with most wanted terms, and their marked spans."""
    spans = field.sentences or ((0, len(text), 0, len(field.tokens)),)
    positions = field.positions
    present = [t for t in wanted if t in positions]
    best = _best(field, present, len(spans))
    start, end, first, last = spans[best]
    if end - start < SHORT_SENTENCE and best + 1 < len(spans):
        end, last = spans[best + 1][1], spans[best + 1][3]
    shown = text[start:end].rstrip()
    end = start + len(shown)
    marked = sorted({k for t in present for k in positions[t] if first <= k < last})
    tokens = [tok for k in marked if (tok := field.tokens[k]).end <= end]
    return Evidence(snippet=shown, marks=_marks(text, start, tokens))


def shown(key: tuple[int, tuple[int, ...]], m: Matrices) -> tuple[str, Marks]:
    """The snippet of paper ``j`` marking the terms of columns ``wanted``; ``key`` is both.

    It comes from the abstract (the title when there is none) and depends only on the paper and
    those terms, so profiles that share them share the work.
    """
    j, wanted = key
    found = m.snippets.get(key)
    if found is None:
        doc = m.collection.docs[j]
        text, field = doc.paper.abstract, doc.abstract
        if not field.tokens:
            text, field = doc.paper.title, doc.title
        features = [m.features[c] for c in wanted]
        terms = [t for f in features for t in ((f,) if isinstance(f, str) else f)]
        made = snippet(text, field, frozenset(terms))
        found = m.snippets[key] = (made.snippet, made.marks)
    return found


def author_reasons(query: Query, j: int, m: Matrices) -> list[str]:
    """``author:`` reasons for paper ``j``, the last author listed in the profile first."""
    return [f"author: {w}" for w in reversed(query.authors) if j in m.author_cols(w)]


def like_reasons(query: Query, j: int, likes: Likes) -> list[str]:
    """The ``like:`` reason naming the liked paper that paper ``j`` stands out most against,
    when that counts for the like signal."""
    pids = likes.known(query.likes)
    if pids:
        standing = likes.column(pids, j)
        best = int(np.argmax(standing))
        if standing[best] > LIKE_FROM:
            pid = pids[best]
            return [f"like: similar to {pid} ({_shortened(likes.liked[pid].title)})"]
    return []


def _shortened(title: str) -> str:
    """``title`` on one line, cut at a word within ``LIKED_TITLE`` characters."""
    title = " ".join(title.split())
    if len(title) <= LIKED_TITLE:
        return title
    return title[: LIKED_TITLE + 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def category_reasons(query: Query, paper: Paper) -> list[str]:
    """``category:`` reasons for the paper's categories the profile asks for."""
    paper_cats = {fold(c): c for c in paper.categories}
    return [f"category: {paper_cats[c]}" for c in sorted(query.categories & paper_cats.keys())]


def vetoes(query: Query, j: int, m: Matrices) -> tuple[str, ...]:
    """``exclude:`` vetoes of paper ``j``, and ``like:`` when it is a paper the profile liked."""
    found = tuple(f"exclude: {p.label}" for p in query.excludes if m.present[p.col, j] > 0)
    pid = m.collection.docs[j].paper.id
    return (*found, f"like: {pid} is a paper you liked") if pid in query.likes else found
