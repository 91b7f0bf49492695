"""Why a paper scored as it did for one profile: reasons, vetoes, and a marked snippet.

Everything here recomputes, for one pair, the same quantities the vectorised signals use, so
the words shown are the ones that actually moved the score.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.matching.index import Feature, Field
from bot.matching.query import Phrase, Query
from bot.matching.signals import Marks, Matrices, like_cosines
from bot.matching.text import Token, fold, same_person
from bot.models import Paper

# A keyword or description term is named in the reasons from this match value up.
REASON_FROM = 0.3
DESCRIPTION_TERMS = 4
# The description is named in the reasons when its shown terms carry this much of it.
DESCRIPTION_REASON_FROM = 0.05
SHORT_SENTENCE = 120
LIKE_REASON_FROM = 0.1
# Words that may sit between two marked words and be marked with them.
_GLUE = frozenset({"", "of", "for", "and", "the", "to"})


@dataclass(frozen=True, slots=True)
class Evidence:
    """The human side of one score."""

    reasons: tuple[str, ...] = ()
    vetoes: tuple[str, ...] = ()
    snippet: str = ""
    marks: tuple[tuple[int, int], ...] = ()


def _keyword_value(phrase: Phrase, j: int, matrices: Matrices) -> tuple[float, str]:
    """How much ``phrase`` matches paper ``j``, and the reason naming it."""
    values, feature = matrices.values[j], phrase.feature
    get = values.get
    if len(phrase.terms) == 1:
        value = get(feature, 0.0)
    else:
        value = sum([w * get(f, 0.0) for f, w in phrase.weights.items()])
    if value < REASON_FROM:
        return value, ""
    title = feature in matrices.in_title[j]
    where = " (title)" if title else "" if feature in values else " (words apart)"
    return value, f"keyword: {phrase.label}{where}"


def _keyword_reasons(query: Query, j: int, matrices: Matrices) -> list[str]:
    found: list[tuple[float, str]] = []
    seen: set[tuple[str, ...]] = set()
    for phrase in query.keywords:
        value, text = _keyword_value(phrase, j, matrices)
        if value >= REASON_FROM and phrase.terms not in seen:
            seen.add(phrase.terms)
            found.append((value, text))
    if len(found) > 1:
        found.sort(key=lambda vt: -vt[0])
    return [text for _, text in found]


def _description_terms(query: Query, values: Mapping[Feature, float]) -> list[tuple[float, str]]:
    """The description terms found that weigh most, with their contributions."""
    weights = query.description
    parts = sorted([(-w * values[t], t) for t, w in weights.items() if t in values])
    return [(-value, str(term)) for value, term in parts[:DESCRIPTION_TERMS]]


def _marks(text: str, start: int, tokens: Sequence[Token]) -> tuple[tuple[int, int], ...]:
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


def snippet(text: str, field: Field, wanted: Collection[str]) -> Evidence:
    """The sentence (two if short) of ``text`` with most wanted terms, and their marked spans."""
    spans = field.sentences or ((0, len(text), 0, len(field.tokens)),)
    positions = field.positions
    present = [t for t in wanted if t in positions]
    best = 0
    if len(spans) > 1:
        gains = [0] * len(spans)
        for term in present:
            for i in field.where[term]:
                gains[i] += 1
        best = gains.index(max(gains))
    start, end, first, last = spans[best]
    if end - start < SHORT_SENTENCE and best + 1 < len(spans):
        end, last = spans[best + 1][1], spans[best + 1][3]
    while end > start and text[end - 1].isspace():
        end -= 1
    marked = sorted({k for t in present for k in positions[t] if first <= k < last})
    tokens = [field.tokens[k] for k in marked if field.tokens[k].end <= end]
    return Evidence(snippet=text[start:end], marks=_marks(text, start, tokens))


def explain_pair(query: Query, j: int, matrices: Matrices, liked: Mapping[str, Paper]) -> Evidence:
    """Reasons, vetoes and snippet for the profile ``query`` and paper column ``j``."""
    doc = matrices.collection.docs[j]
    values = matrices.values[j]
    reasons = _keyword_reasons(query, j, matrices)
    for wanted in query.authors if doc.paper.authors else ():
        if any(same_person(wanted, name) for name in doc.paper.authors):
            reasons.insert(0, f"author: {wanted}")
    if query.likes:
        reasons.extend(_like_reasons(query, doc.paper, liked, matrices))
    terms = _description_terms(query, values)
    if terms and sum(value for value, _ in terms) >= DESCRIPTION_REASON_FROM:
        words = dict.fromkeys(query.surface.get(t, t) for _, t in terms)
        reasons.append("description: " + ", ".join(words))
    if query.categories:
        paper_cats = {fold(c): c for c in doc.paper.categories}
        found = sorted(query.categories & paper_cats.keys())
        reasons.extend(f"category: {paper_cats[c]}" for c in found)
    vetoes = tuple(f"exclude: {p.label}" for p in query.excludes if values.get(p.feature, 0.0) > 0)
    shown, marks = _shown(query, j, terms, matrices)
    return Evidence(tuple(reasons), vetoes, shown, marks)


def _shown(
    query: Query, j: int, terms: list[tuple[float, str]], matrices: Matrices
) -> tuple[str, Marks]:
    """The snippet: marks the keyword words the paper holds, else its top description terms.

    It depends only on the paper and those words, so profiles that share them share the work.
    """
    doc = matrices.collection.docs[j]
    text, field = doc.paper.abstract, doc.abstract
    if not field.tokens:
        text, field = doc.paper.title, doc.title
    wanted = frozenset(t for t in query.keyword_terms if t in field.positions)
    if not wanted:
        wanted = frozenset(t for _, t in terms)
    key = (j, wanted)
    shown = matrices.snippets.get(key)
    if shown is None:
        made = snippet(text, field, wanted)
        shown = matrices.snippets[key] = (made.snippet, made.marks)
    return shown


def _like_reasons(query: Query, paper: Paper, liked: Mapping[str, Paper], m: Matrices) -> list[str]:
    cosines = like_cosines(query, paper, liked, m)
    if cosines:
        best, pid = max((c, pid) for pid, c in cosines.items())
        if best >= LIKE_REASON_FROM:
            return [f"like: similar to {pid}"]
    return []
