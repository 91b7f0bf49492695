"""From scores to digests: the calibrated threshold, ``max_papers``, rank order, explanations."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from bot.matching.combine import DEFAULT_THRESHOLD
from bot.matching.scorer import LexicalScorer, Scorer, Scores
from bot.models import Match, Paper, Subscriber

# Scores are compared at this precision, so float noise never beats the upvotes tie-break.
DECIMALS = 4


Matches = Sequence[Match] | Callable[[], Sequence[Match]]


class Selection:
    """One subscriber's result.

    ``picked`` goes into the digest (best first, at most ``max_papers``); ``more`` cleared the
    threshold but did not fit; ``ranked`` is every paper scored, best first. ``more`` and
    ``ranked`` may be given as functions: they are then built when first read, since a run with
    many subscribers rarely needs them.
    """

    __slots__ = ("_more", "_ranked", "more_count", "picked")

    def __init__(
        self,
        picked: Sequence[Match],
        more: Matches = (),
        ranked: Matches = (),
        *,
        more_count: int = -1,
    ) -> None:
        self.picked: tuple[Match, ...] = tuple(picked)
        self._more = more if callable(more) else tuple(more)
        self._ranked = ranked if callable(ranked) else tuple(ranked)
        self.more_count: int = more_count if more_count >= 0 else len(self.more)

    @property
    def more(self) -> tuple[Match, ...]:
        """Matches that cleared the threshold but did not fit, best first."""
        if callable(self._more):
            self._more = tuple(self._more())
        return self._more

    @property
    def ranked(self) -> tuple[Match, ...]:
        """Every paper scored, best first."""
        if callable(self._ranked):
            self._ranked = tuple(self._ranked())
        return self._ranked

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return (self.picked, self.more, self.ranked) == (other.picked, other.more, other.ranked)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Selection(picked={self.picked!r}, more_count={self.more_count})"


def threshold_for(subscriber: Subscriber) -> float:
    """The score a paper needs: the subscriber's ``min_score`` or the calibrated default."""
    return DEFAULT_THRESHOLD if subscriber.min_score is None else subscriber.min_score


def tie_break(papers: Sequence[Paper]) -> np.ndarray:
    """Rank of each paper among equal scores: most upvotes first, then by id."""
    order = sorted(range(len(papers)), key=lambda j: (-(papers[j].upvotes or 0), papers[j].id))
    ranks = np.empty(len(papers), dtype=np.int64)
    ranks[order] = np.arange(len(papers))
    return ranks


def rank_order(scores: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Column order best first: score, then ``ties`` (see ``tie_break``)."""
    return np.lexsort((ties, -np.round(scores, DECIMALS)))


class _Builder:
    """Makes ``Match`` objects for one subscriber row of a score matrix."""

    def __init__(self, scores: Scores, row: int, papers: Sequence[Paper]) -> None:
        self.scores, self.row, self.papers = scores, row, papers

    def match(self, col: int) -> Match:
        ev = self.scores.evidence(self.row, col)
        score = round(float(self.scores.matrix[self.row, col]), DECIMALS)
        return Match(self.papers[col], score, ev.reasons, ev.snippet, ev.marks)

    def matches(self, cols: Sequence[int] | np.ndarray) -> Callable[[], tuple[Match, ...]]:
        return lambda: tuple(self.match(int(c)) for c in cols)


def _selection(
    sub: Subscriber, scores: Scores, row: int, papers: Sequence[Paper], ties: np.ndarray
) -> Selection:
    values = scores.matrix[row]
    order = rank_order(values, ties)
    above = order[values[order] >= max(threshold_for(sub), 1e-6)]
    build = _Builder(scores, row, papers)
    picked = above[: sub.max_papers]
    rest = above[sub.max_papers :]
    return Selection(
        build.matches(picked)(), build.matches(rest), build.matches(order), more_count=len(rest)
    )


def select(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    *,
    corpus: Sequence[Paper] = (),
    liked: Mapping[str, Paper] | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Selection]:
    """Each subscriber's digest from today's ``papers``, keyed by email.

    ``corpus`` is a window of stored papers for term statistics (``papers`` always count);
    ``liked`` maps paper ids to stored papers for the ``like:`` signal. Pure and deterministic.
    """
    scores = (scorer or LexicalScorer()).score(subscribers, papers, corpus=corpus, liked=liked)
    ties = tie_break(papers)
    return {
        sub.email: _selection(sub, scores, i, papers, ties) for i, sub in enumerate(subscribers)
    }
