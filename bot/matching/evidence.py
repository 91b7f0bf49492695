"""Why a paper scored as it did for one profile: reasons, vetoes, and a marked snippet.

Everything here recomputes, for one pair, the same quantities the vectorised signals use, so
the words shown are the ones that actually moved the score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.matching.index import Doc, Feature, Field
from bot.matching.query import Phrase, Query
from bot.matching.signals import Matrices, like_cosines
from bot.matching.text import fold, same_person
from bot.models import Paper

# A keyword or description term is named in the reasons from this match value up.
REASON_FROM = 0.3
DESCRIPTION_TERMS = 4
SHORT_SENTENCE = 120


@dataclass(frozen=True, slots=True)
class Evidence:
    """The human side of one score."""

    reasons: tuple[str, ...] = ()
    vetoes: tuple[str, ...] = ()
    snippet: str = ""
    marks: tuple[tuple[int, int], ...] = ()


def _value(phrase: Phrase, values: Mapping[Feature, float]) -> float:
    return sum(w * values.get(f, 0.0) for f, w in phrase.weights.items())


def _keyword_reasons(query: Query, doc: Doc, values: Mapping[Feature, float]) -> list[str]:
    found: list[tuple[float, str]] = []
    seen: set[tuple[str, ...]] = set()
    for phrase in query.keywords:
        value = _value(phrase, values)
        if value < REASON_FROM or phrase.terms in seen:
            continue
        seen.add(phrase.terms)
        if phrase.feature in doc.title.counts(frozenset({phrase.terms}), [len(phrase.terms)]):
            found.append((value, f"keyword: {phrase.label} (title)"))
        elif values.get(phrase.feature, 0.0) > 0:
            found.append((value, f"keyword: {phrase.label}"))
        else:
            found.append((value, f"keyword: {phrase.label} (words apart)"))
    return [text for _, text in sorted(found, key=lambda vt: -vt[0])]


def _description_terms(query: Query, values: Mapping[Feature, float]) -> list[str]:
    parts = [(-w * values[t], str(t)) for t, w in query.description.items() if t in values]
    return [str(term) for _, term in sorted(parts)[:DESCRIPTION_TERMS]]


def _marked_terms(query: Query, terms: list[str]) -> dict[str, float]:
    wanted: dict[str, float] = {}
    for term in terms:
        wanted[term] = query.description[term]
    for phrase in query.keywords:
        for term in phrase.terms:
            wanted[term] = wanted.get(term, 0.0) + 1.0
    return wanted


def snippet(text: str, field: Field, wanted: Mapping[str, float]) -> Evidence:
    """The sentence (two if short) of ``text`` with most wanted terms, and their marked spans."""
    spans = field.sentences or ((0, len(text), field.tokens),)
    gains = [0.0] * len(spans)
    for term, weight in wanted.items():
        for i in field.where.get(term, ()):
            gains[i] += weight
    best = max(range(len(gains)), key=lambda i: (gains[i], -i))
    start, end, tokens = spans[best]
    if end - start < SHORT_SENTENCE and best + 1 < len(spans):
        end, tokens = spans[best + 1][1], tokens + spans[best + 1][2]
    end = len(text[:end].rstrip())
    marks: list[tuple[int, int]] = []
    for tok in tokens:
        if tok.end <= end and any(t in wanted for t in tok.terms):
            gap = text[marks[-1][1] + start : tok.start] if marks else "x"
            if marks and len(gap) <= 4 and gap.strip(" -") in {"", "of", "for", "and", "the", "to"}:
                marks[-1] = (marks[-1][0], tok.end - start)
            else:
                marks.append((tok.start - start, tok.end - start))
    return Evidence(snippet=text[start:end], marks=tuple(marks))


def explain_pair(query: Query, j: int, matrices: Matrices, liked: Mapping[str, Paper]) -> Evidence:
    """Reasons, vetoes and snippet for the profile ``query`` and paper column ``j``."""
    doc = matrices.collection.docs[j]
    values = matrices.values[j]
    reasons = _keyword_reasons(query, doc, values)
    for wanted in query.authors if doc.paper.authors else ():
        if any(same_person(wanted, name) for name in doc.paper.authors):
            reasons.insert(0, f"author: {wanted}")
    cosines = like_cosines(query, doc.paper, liked, matrices)
    if cosines:
        best, pid = max((c, pid) for pid, c in cosines.items())
        if best >= 0.1:
            reasons.append(f"like: similar to {pid}")
    terms = _description_terms(query, values)
    if terms and sum(query.description[t] * values[t] for t in terms) >= 0.05:
        reasons.append("description: " + ", ".join(query.surface.get(t, t) for t in terms))
    paper_cats = {fold(c): c for c in doc.paper.categories}
    reasons.extend(
        f"category: {paper_cats[c]}" for c in sorted(query.categories & paper_cats.keys())
    )
    vetoes = tuple(f"exclude: {p.label}" for p in query.excludes if values.get(p.feature, 0.0) > 0)
    text, field = doc.paper.abstract, doc.abstract
    if not text.strip():
        text, field = doc.paper.title, doc.title
    shown = snippet(text, field, _marked_terms(query, terms))
    return Evidence(tuple(reasons), vetoes, shown.snippet, shown.marks)
