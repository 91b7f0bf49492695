"""The papers side of lexical matching: analysed fields, document frequencies, field statistics.

Term weighting follows BM25F: a term's frequency in the title counts ``TITLE_WEIGHT`` times its
frequency in the abstract, each field normalised by its length, and the sum saturates as
``x / (x + K1)`` so a match is worth at most 1 however often it repeats. A phrase of several
words saturates sooner (``K1_PHRASE``): written word for word it is far more specific than one
word, so a single mention in an abstract up to about 1.5 times the day's average length already
carries a keyword past the threshold, where a single word needs the title or several mentions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.models import Paper
from bot.text import (
    Acronyms,
    Token,
    find_acronyms,
    frequencies,
    paper_text,
    sentences,
    tokenize,
)

K1 = 1.2
K1_PHRASE = 0.4
B = 0.75
TITLE_WEIGHT = 4.0
MAX_PHRASE = 6

Feature = str | tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """One analysed field of one paper.

    ``sentences`` holds (first char, end char, first token, end token) per sentence; ``where``
    maps a term to the sentences holding it and ``positions`` to the tokens carrying it.
    """

    tokens: tuple[Token, ...]
    terms: tuple[str, ...]
    segments: tuple[int, ...]
    sentences: tuple[tuple[int, int, int, int], ...]
    where: dict[str, tuple[int, ...]]
    positions: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, text: str, acronyms: Acronyms) -> Field:
        """Analyse ``text``."""
        tokens = tokenize(text, acronyms)
        terms = tuple(t for tok in tokens for t in tok.terms)
        segments = tuple(tok.segment for tok in tokens for _ in tok.terms)
        spans = sentences(text) or [(0, len(text))]
        bounds, k = [], 0
        for start, end in spans:
            first = k
            while k < len(tokens) and tokens[k].start < end:
                k += 1
            bounds.append((start, end, first, k))
        positions: dict[str, list[int]] = {}
        where: dict[str, list[int]] = {}
        for i, (_, _, first, last) in enumerate(bounds):
            for k in range(first, last):
                for term in tokens[k].terms:
                    positions.setdefault(term, []).append(k)
                    seen = where.setdefault(term, [])
                    if not seen or seen[-1] != i:
                        seen.append(i)
        return cls(
            tuple(tokens),
            terms,
            segments,
            tuple(bounds),
            {t: tuple(ix) for t, ix in where.items()},
            {t: tuple(ix) for t, ix in positions.items()},
        )

    def pairs(self) -> set[tuple[str, str]]:
        """Every two terms next to each other inside one segment (the phrases of length 2)."""
        terms, segments = self.terms, self.segments
        return {
            (terms[i], terms[i + 1])
            for i in range(len(terms) - 1)
            if segments[i] == segments[i + 1]
        }

    def counts(
        self, phrases: frozenset[tuple[str, ...]], lengths: Iterable[int]
    ) -> Counter[Feature]:
        """Frequencies of single terms and of the wanted phrases inside one segment."""
        found: Counter[Feature] = Counter(self.terms)
        terms, segments = self.terms, self.segments
        for n in lengths:
            for i in range(len(terms) - n + 1):
                gram = terms[i : i + n]
                if gram in phrases and segments[i] == segments[i + n - 1]:
                    found[gram] += 1
        return found


@dataclass(frozen=True, slots=True)
class Doc:
    """A paper analysed for matching."""

    paper: Paper
    title: Field
    abstract: Field


@dataclass
class Collection:
    """Today's papers analysed, with document frequencies over them and the corpus window."""

    docs: list[Doc]
    acronyms: dict[str, tuple[str, ...]]
    df: Counter[str]
    n_docs: int
    avg_title: float
    avg_abstract: float
    _idf_cache: dict[str, float] = field(default_factory=dict)
    _pairs: frozenset[tuple[str, str]] | None = None

    @classmethod
    def build(
        cls, papers: Sequence[Paper], corpus: Sequence[Paper] = (), extra_text: Iterable[str] = ()
    ) -> Collection:
        """Analyse ``papers``; frequencies count each distinct paper of papers and corpus."""
        unique = {p.id: p for p in corpus} | {p.id: p for p in papers}
        texts = {pid: paper_text(p.title, p.abstract) for pid, p in unique.items()}
        acronyms = find_acronyms([*texts.values(), *extra_text])
        docs = [Doc(p, Field.of(p.title, acronyms), Field.of(p.abstract, acronyms)) for p in papers]
        analysed = {d.paper.id: d for d in docs}  # read already: counted from their terms
        others = (text for pid, text in texts.items() if pid not in analysed)
        terms = ((*d.title.terms, *d.abstract.terms) for d in analysed.values())
        df = frequencies(others, acronyms, terms)
        n = max(len(docs), 1)
        return cls(
            docs,
            acronyms,
            df,
            max(len(unique), 1),
            sum(len(d.title.terms) for d in docs) / n or 1.0,
            sum(len(d.abstract.terms) for d in docs) / n or 1.0,
        )

    def idf(self, term: str) -> float:
        """Inverse document frequency (BM25 form, always positive)."""
        value = self._idf_cache.get(term)
        if value is None:
            df = self.df.get(term, 0)
            value = math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))
            self._idf_cache[term] = value
        return value

    def pairs(self) -> frozenset[tuple[str, str]]:
        """Every two terms next to each other in a title or abstract of today's papers."""
        if self._pairs is None:
            found: set[tuple[str, str]] = set()
            for doc in self.docs:
                found |= doc.title.pairs() | doc.abstract.pairs()
            self._pairs = frozenset(found)
        return self._pairs

    def saturated(
        self, doc: Doc, wanted: frozenset[tuple[str, ...]], lengths: Sequence[int]
    ) -> tuple[dict[Feature, float], frozenset[Feature]]:
        """Each feature of ``doc`` (terms, wanted phrases) -> BM25F value; features in the title."""
        title = doc.title.counts(wanted, lengths)
        abstract = doc.abstract.counts(wanted, lengths)
        norm_t = 1 - B + B * len(doc.title.terms) / self.avg_title
        norm_a = 1 - B + B * len(doc.abstract.terms) / self.avg_abstract
        values: dict[Feature, float] = {}
        for feature in title.keys() | abstract.keys():
            x = TITLE_WEIGHT * title[feature] / norm_t + abstract[feature] / norm_a
            values[feature] = x / (x + (K1_PHRASE if isinstance(feature, tuple) else K1))
        return values, frozenset(title)
